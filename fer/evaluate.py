"""Predictions and metrics for a trained model; scikit-learn computes the numbers."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from fer.calibration import expected_calibration_error, nll, prior_correction, scaled_probabilities
from fer.classifier import Classifier
from fer.config import TrainConfig
from fer.data import CLASSES

if TYPE_CHECKING:
    from fer.checkpoint import Checkpoint, Preprocessing


@torch.no_grad()
def view_logits(classifier: Classifier, images, batch_size: int = TrainConfig.eval_batch_size,
                device: str | torch.device = "cpu", precision: str = "auto") -> np.ndarray:
    """The network's raw logits (V, N, 7) for uint8 faces (N, 48, 48), one row block per TTA view."""
    classifier.eval()
    x_all = torch.as_tensor(np.require(images, requirements=["W"]))  # (a copy only of a read-only array)
    out = []
    for i in range(0, len(x_all), batch_size):
        with autocast_for(device, precision):
            out.append(classifier.view_logits(x_all[i:i + batch_size].to(device).unsqueeze(1)).cpu())
    if not out:
        return np.zeros((1, 0, len(CLASSES)), np.float32)
    return torch.cat(out, 1).numpy()


def probabilities(logits: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """(V, N, 7) view logits -> the checkpoint's probabilities (N, 7): fer.calibration.combine_views
    with its temperature and prior correction, as the Classifier computes them."""
    factor = prior_correction(prep) if prep.logit_adjust else None
    return scaled_probabilities(logits, prep.temperature, factor).astype(np.float32)


def predict_proba(model: torch.nn.Module, images, prep: Preprocessing, tta: str = "none",
                  batch_size: int = TrainConfig.eval_batch_size, device: str | torch.device = "cpu",
                  precision: str = "auto") -> np.ndarray:
    """Class probabilities (N, 7) for uint8 faces (N, 48, 48), as the preprocessing `prep` says."""
    return probabilities(view_logits(Classifier.of(model, prep, tta), images, batch_size, device, precision), prep)


def predict_checkpoint(ckpt: Checkpoint, images, device: str | torch.device = "cpu", adjusted: bool = True,
                       precision: str | None = None) -> np.ndarray:
    """Probabilities exactly as the checkpoint's run scored them: its preprocessing, TTA, precision
    and prior correction (adjusted=False leaves the correction out; `precision` overrides the run's,
    e.g. "fp32" for what an exported graph computes)."""
    prep = ckpt.prep if adjusted else replace(ckpt.prep, logit_adjust=0.0)
    return predict_proba(ckpt.model.to(device), images, prep, ckpt.tta, device=device,
                         precision=precision or ckpt.precision)


def uses_bf16(device, precision: str = "auto") -> bool:
    """bf16 when asked, or on CUDA under "auto"; fp32 otherwise (exact, seeded CPU runs)."""
    return precision == "bf16" or (precision == "auto" and torch.device(device).type == "cuda")


def autocast_for(device, precision: str = "auto"):
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=uses_bf16(device, precision))


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """prediction_metrics of the most probable class, plus loss (NLL of the probabilities) and
    ece (expected calibration error, fer.calibration's 15 bins)."""
    return {**prediction_metrics(labels, probs.argmax(1)), "loss": nll(labels, probs),
            "ece": expected_calibration_error(labels, probs) if len(labels) else 0.0}


def prediction_metrics(labels: np.ndarray, pred: np.ndarray) -> dict:
    """accuracy, macro_f1, n, per_class and its macro_avg and weighted_avg ({precision, recall, f1,
    support}), and confusion_matrix (7x7 counts, rows = true class), from scikit-learn."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    k = list(range(len(CLASSES)))
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=k, zero_division=0)
    table = np.stack([p, r, f])  # (3, 7): precision, recall, f1 per class

    def row(values, support) -> dict:
        return {"precision": float(values[0]), "recall": float(values[1]), "f1": float(values[2]),
                "support": int(support)}

    return {
        "accuracy": float((pred == labels).mean()) if len(labels) else 0.0,
        "macro_f1": float(f.mean()),
        "n": int(len(labels)),
        "per_class": {c: row(table[:, i], s[i]) for i, c in enumerate(CLASSES)},
        "macro_avg": row(table.mean(1), s.sum()),
        "weighted_avg": row(table @ (s / max(s.sum(), 1)), s.sum()),
        "confusion_matrix": confusion_matrix(labels, pred, labels=k).tolist(),
    }
