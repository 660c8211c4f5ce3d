"""Sweep-level analysis from the trials table: optimisation history, Optuna's
hyperparameter importance, parallel-coordinates data, and the CNN-vs-DNN table."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import optuna
import pandas as pd

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def optimisation_history(table: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    """Per experiment: trial order, each trial's score, and the best score so far."""
    out = {}
    for exp, rows in table.groupby("experiment", sort=True):
        rows = rows.reset_index(drop=True)
        values = rows[metric].astype(float)
        out[exp] = pd.DataFrame({"trial": np.arange(1, len(rows) + 1), "value": values,
                                 "best_so_far": values.cummax()})
    return out


def param_importance(table: pd.DataFrame, info: dict) -> dict[str, float]:
    """Optuna's fANOVA importances over the trials table of one experiment.

    The trials are rebuilt as an Optuna study with the sweep's own distributions; a
    parameter that is conditional (absent from some trials) is left out, as Optuna does.
    """
    metric, dists = info["metric"], info.get("distributions", {})
    study = optuna.create_study(direction="maximize")
    for _, row in table.iterrows():
        if not math.isfinite(row.get(metric, math.nan)):
            continue
        params, used = {}, {}
        for key, raw in dists.items():
            col = key.replace("/", ".")
            if col in row and not _missing(row[col]):
                dist = optuna.distributions.json_to_distribution(raw)
                value = _as_param(row[col], dist)
                if value is not None:
                    params[key], used[key] = value, dist
        study.add_trial(optuna.trial.create_trial(params=params, distributions=used, value=float(row[metric])))
    if len(study.trials) < 3:
        return {}
    try:
        with warnings.catch_warnings():  # "few trials in a regime": the report says how many trials these rest on
            warnings.simplefilter("ignore", UserWarning)
            return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):  # e.g. every parameter constant across trials
        return {}


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _as_param(value, dist):
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        for choice in dist.choices:  # lists travel as JSON text in both the table and the choices
            if choice == value or (isinstance(choice, str) and _same_json(choice, value)):
                return choice
        return None
    return type(dist.low)(value)


def _same_json(a: str, b) -> bool:
    try:
        return json.loads(a) == (json.loads(b) if isinstance(b, str) else b)
    except (TypeError, ValueError):
        return False


def parallel_coordinates(table: pd.DataFrame, columns: list[str], metric: str) -> tuple[pd.DataFrame, list[str]]:
    """Each searched column scaled to [0, 1] (categories by their order of appearance,
    numbers on a log scale when they span decades), plus the metric."""
    out, names = pd.DataFrame(index=table.index), []
    for col in columns:
        if col not in table or table[col].isna().all():
            continue
        v = table[col]
        if pd.api.types.is_numeric_dtype(v) and v.dropna().nunique() > 1:
            x = v.astype(float)
            if (x > 0).all() and x.max() / x.min() > 20:
                x = np.log10(x)
            out[col] = (x - x.min()) / (x.max() - x.min())
        else:
            codes = {c: i for i, c in enumerate(dict.fromkeys(v.astype(str)))}
            out[col] = v.astype(str).map(codes) / max(len(codes) - 1, 1)
        names.append(col)
    out[metric] = table[metric]
    return out, names


def family_table(best: list[dict], evaluated: dict[str, dict]) -> pd.DataFrame:
    """CNN against DNN: the best trial of each family, scored on the report's images."""
    rows = []
    for b in best:
        e = evaluated.get(b["family"], {})
        rows.append({"family": b["family"], "sweep " + b["metric"]: b["value"],
                     "accuracy": e.get("accuracy"), "macro_f1": e.get("macro_f1"),
                     "parameters": b.get("num_params"), "seconds_per_epoch": e.get("seconds_per_epoch")})
    return pd.DataFrame(rows)
