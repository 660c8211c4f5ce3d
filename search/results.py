"""Read finished (or running) experiments: every trial as a pandas row, and the best
trial of each family with a path to its best checkpoint in fer's format.

Light to import (pandas only): Ray's readers are imported when an experiment is read."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from fer.errors import FerError

SWEEP_FILE = "sweep.json"  # written by search.sweep beside Tune's files: family, metric, searched keys
STUDY_FILE = "optuna.db"  # the sweep's Optuna study, unless it went to another storage (search.study)


class ResultsError(FerError):
    """A results folder holds no experiment, or one that cannot be read."""


def find_experiments(root: str | Path) -> list[Path]:
    """Experiment folders (each with sweep.json and Tune's state) under root, root included."""
    if not Path(root).exists():
        raise ResultsError(f"{root}: no such folder")
    root = Path(root).resolve()  # Tune reads absolute paths only (a relative one is an "empty URI scheme")
    from ray.tune import Tuner

    found = sorted(p.parent for p in root.rglob(SWEEP_FILE) if Tuner.can_restore(str(p.parent)))
    if not found:
        raise ResultsError(f"{root}: no search experiments inside (looked for {SWEEP_FILE} with Tune state)")
    return found


def _trials(exp: Path) -> tuple[dict, list[dict]]:
    """(sweep info, one dict per trial: id, status, config, history DataFrame, checkpoints)."""
    from ray.tune import ExperimentAnalysis

    exp = Path(exp).resolve()
    info = json.loads((exp / SWEEP_FILE).read_text())
    try:
        analysis = ExperimentAnalysis(str(exp), default_metric=info["metric"], default_mode="max")
    except Exception as e:  # Tune raises several types for a half-written state
        raise ResultsError(f"{exp}: cannot read the experiment ({e.__class__.__name__}: {e})") from None
    frames = analysis.trial_dataframes
    trials = []
    for t in analysis.trials:
        history = frames.get(t.trial_id, pd.DataFrame())
        ckpt = None
        if info["metric"] in history:
            best = analysis.get_best_checkpoint(t, info["metric"], "max")
            ckpt = str(Path(best.path) / "checkpoint.pt") if best is not None else None
        trials.append({"trial_id": t.trial_id, "status": t.status, "config": t.config, "history": history,
                       "checkpoint": ckpt, "path": t.path})
    return info, trials


def _searched(config: dict, info: dict) -> dict:
    """The values the searcher chose, as "section.key" (None where a conditional key was inactive)."""
    flat = {f"{s}.{k}": v for s in ("model", "train") for k, v in config.get(s, {}).items()}
    return {k.replace("/", "."): flat.get(k.replace("/", ".")) for k in info["searched"]}


def _row(exp: Path, info: dict, trial: dict) -> dict:
    h, metric = trial["history"], info["metric"]
    searched = _searched(trial["config"], info)
    best = h[metric].max() if metric in h else math.nan
    return {"experiment": exp.name, "family": info["family"], "trial_id": trial["trial_id"], "metric": metric,
            "status": trial["status"], "epochs": int(h["training_iteration"].max()) if len(h) else 0,
            metric: best, "val_acc": h["val_acc"].max() if "val_acc" in h else math.nan,
            "val_macro_f1": h["val_macro_f1"].max() if "val_macro_f1" in h else math.nan,
            "num_params": int(h["num_params"].iloc[-1]) if "num_params" in h else None,
            "epoch_s": h["epoch_s"].mean() if "epoch_s" in h else math.nan,
            **{k: json.dumps(v) if isinstance(v, list) else v for k, v in searched.items()},
            "checkpoint": trial["checkpoint"]}


def trials_table(root: str | Path) -> pd.DataFrame:
    """Every trial of every experiment under root, one row each; trials a warm start imported
    into a sweep's study have status IMPORTED (and no checkpoint of this experiment)."""
    rows = []
    for exp in find_experiments(root):
        info, trials = _trials(exp)
        rows += [_row(exp, info, t) for t in trials] + _imported_rows(exp, info)
    return pd.DataFrame(rows)


def load_study(exp: str | Path, info: dict | None = None):
    """The sweep's Optuna study: optuna.db in the experiment folder (wherever the folder has moved),
    else the storage sweep.json names; None for a sweep without one, or one that cannot be read."""
    import optuna

    exp = Path(exp)
    info = info or json.loads((exp / SWEEP_FILE).read_text())
    url = f"sqlite:///{(exp / STUDY_FILE).resolve()}" if (exp / STUDY_FILE).exists() else info.get("optuna_storage")
    if not url or not info.get("study_name"):
        return None
    try:
        return optuna.load_study(study_name=info["study_name"], storage=url)
    except Exception:  # a server out of reach, a hidden password, a study deleted: the table goes on without it
        return None


def _imported_rows(exp: Path, info: dict) -> list[dict]:
    import optuna

    study, metric = load_study(exp, info), info["metric"]
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if study else []
    return [{"experiment": exp.name, "family": info["family"], "trial_id": f"imported#{t.user_attrs['source_trial']}",
             "metric": metric, "status": "IMPORTED", "epochs": t.user_attrs.get("epochs", len(t.intermediate_values)),
             metric: t.value, "num_params": t.user_attrs.get("num_params"),
             **{k.replace("/", "."): v for k, v in t.params.items()}, "checkpoint": None,
             "imported_from": t.user_attrs["imported_from"]}
            for t in done if "imported_from" in t.user_attrs]


def trial_histories(exp: str | Path) -> tuple[dict, dict[str, pd.DataFrame]]:
    """(sweep info, {trial_id: per-epoch DataFrame}) of one experiment."""
    info, trials = _trials(Path(exp))
    return info, {t["trial_id"]: t["history"] for t in trials}


def best_trials(root: str | Path) -> list[dict]:
    """The best trial of each family: family, metric, value, config, params, checkpoint."""
    best: dict[str, dict] = {}
    for exp in find_experiments(root):
        info, trials = _trials(exp)
        metric = info["metric"]
        for t in trials:
            if metric not in t["history"] or t["checkpoint"] is None:
                continue
            value = float(t["history"][metric].max())
            family = info["family"]
            if family not in best or value > best[family]["value"]:
                best[family] = {"family": family, "metric": metric, "value": value, "config": t["config"],
                                "params": _searched(t["config"], info),
                                "checkpoint": t["checkpoint"], "experiment": str(exp), "trial_id": t["trial_id"],
                                "num_params": int(t["history"]["num_params"].iloc[-1])}
    if not best:
        raise ResultsError(f"{root}: no trial has reported a result yet")
    return sorted(best.values(), key=lambda b: b["family"])
