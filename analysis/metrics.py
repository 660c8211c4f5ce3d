"""Confusion matrix and per-class scores (scikit-learn), with never-predicted classes named."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix, f1_score, recall_score

from fer.data import CLASSES
from fer.evaluate import prior_factor


def confusion(labels: np.ndarray, preds: np.ndarray) -> dict:
    """counts (7x7, rows = true class), row-normalised rates, per-class report with
    macro/weighted averages, and the classes the model never predicts."""
    k = list(range(len(CLASSES)))
    counts = confusion_matrix(labels, preds, labels=k)
    rows = counts.sum(1, keepdims=True)
    rates = np.divide(counts, rows, out=np.zeros(counts.shape, float), where=rows > 0)
    report = classification_report(labels, preds, labels=k, target_names=list(CLASSES), output_dict=True,
                                    zero_division=0)
    predicted = counts.sum(0)
    never = [CLASSES[i] for i in k if predicted[i] == 0 and rows[i, 0] > 0]
    return {"counts": counts, "rates": rates, "report": report, "never_predicted": never,
            "accuracy": float(np.trace(counts) / max(counts.sum(), 1))}


def describe_never_predicted(never: list[str]) -> str:
    if not never:
        return "Every class is predicted at least once."
    names = ", ".join(f"'{c}'" for c in never)
    verb = "is" if len(never) == 1 else "are"
    return (f"{names} {verb} never predicted: its column in the confusion matrix is all zeros, "
            "so its recall is 0 whatever its support.")


def prior_tradeoff(labels: np.ndarray, probs: np.ndarray, prior, taus=(0.0, 0.25, 0.5, 0.75, 1.0)) -> pd.DataFrame:
    """Accuracy, macro-F1 and each class's recall under post-hoc logit adjustment with each tau
    (fer.evaluate.prior_factor, as `train.logit_adjust` applies it): one row per tau.
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
