"""Sweep-level analysis from each sweep's stored Optuna study (search.results.load_study), and
the CNN-vs-DNN table. Importances are Optuna's fANOVA (named so in the report: Optuna's default
evaluator is another); the figures are Optuna's own, drawn in analysis.plots."""
from __future__ import annotations

import warnings

import optuna
import pandas as pd

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

IMPORTANCE = "fANOVA"  # the evaluator the report names; evaluator() builds it


def evaluator() -> optuna.importance.FanovaImportanceEvaluator:
    return optuna.importance.FanovaImportanceEvaluator(seed=0)


def finished(study: optuna.Study) -> list:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def param_importance(study: optuna.Study) -> dict[str, float]:
    """fANOVA importances over the study's finished trials, for the parameters every one of them
    has (a conditional parameter is left out, as Optuna does); {} with fewer than 3 trials."""
    if len(finished(study)) < 3:
        return {}
    try:
        with warnings.catch_warnings():  # "few trials": the report says how many trials these rest on
            warnings.simplefilter("ignore", UserWarning)
            found = optuna.importance.get_param_importances(study, evaluator=evaluator())
        return {k: float(v) for k, v in found.items()}
    except (RuntimeError, ValueError):  # e.g. every parameter constant across trials
        return {}


def family_table(best: list[dict], evaluated: dict[str, dict]) -> pd.DataFrame:
    """CNN against DNN: the best trial of each family, scored on the report's images."""
    rows = []
    for b in best:
        e = evaluated.get(b["family"], {})
        rows.append({"family": b["family"], "sweep " + b["metric"]: b["value"],
                     "accuracy": e.get("accuracy"), "macro_f1": e.get("macro_f1"),
                     "parameters": b.get("num_params"), "seconds_per_epoch": e.get("seconds_per_epoch")})
    return pd.DataFrame(rows)
