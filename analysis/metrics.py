"""Confusion matrix and per-class scores (fer.evaluate's), with never-predicted classes named."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, recall_score

from fer.calibration import prior_factor
from fer.data import CLASSES
from fer.evaluate import prediction_metrics


def confusion(labels: np.ndarray, preds: np.ndarray) -> dict:
    """fer's prediction_metrics (accuracy, macro_f1, per_class, macro_avg, weighted_avg), plus
    counts as an array (7x7, rows = true class), row-normalised rates, and the classes the model
    never predicts although they occur."""
    metrics = prediction_metrics(labels, preds)
    counts = np.array(metrics["confusion_matrix"])
    rows = counts.sum(1, keepdims=True)
    rates = np.divide(counts, rows, out=np.zeros(counts.shape, float), where=rows > 0)
    never = [c for i, c in enumerate(CLASSES) if counts[:, i].sum() == 0 and rows[i, 0] > 0]
    return {**metrics, "counts": counts, "rates": rates, "never_predicted": never}


def describe_never_predicted(never: list[str]) -> str:
    if not never:
        return "Every class is predicted at least once."
    names = ", ".join(f"'{c}'" for c in never)
    verb = "is" if len(never) == 1 else "are"
    return (f"{names} {verb} never predicted: its column in the confusion matrix is all zeros, "
            "so its recall is 0 whatever its support.")


def prior_tradeoff(labels: np.ndarray, probs: np.ndarray, prior, taus=(0.0, 0.25, 0.5, 0.75, 1.0)) -> pd.DataFrame:
    """Accuracy, macro-F1 and each class's recall under post-hoc logit adjustment with each tau
    (fer.calibration.prior_factor, as `train.logit_adjust` applies it): one row per tau.
    Raising tau trades a little accuracy for recall on rare classes such as disgust."""
    k = list(range(len(CLASSES)))
    rows = []
    for tau in taus:
        pred = (probs * prior_factor(prior, tau)).argmax(1)
        recall = recall_score(labels, pred, labels=k, average=None, zero_division=0)
        rows.append({"tau": tau, "accuracy": float((pred == labels).mean()),
                     "macro_f1": float(f1_score(labels, pred, labels=k, average="macro", zero_division=0)),
                     **{f"recall_{c}": float(r) for c, r in zip(CLASSES, recall)}})
    return pd.DataFrame(rows)
