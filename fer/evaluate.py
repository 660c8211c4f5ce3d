"""Predictions and metrics for a trained model; scikit-learn computes the numbers."""
from __future__ import annotations

import numpy as np
import torch

from fer.calibration import expected_calibration_error, nll, scaled_probabilities
from fer.config import TrainConfig
from fer.data import CLASSES
from fer.transforms import eval_views, normalize


@torch.no_grad()
def view_logits(model: torch.nn.Module, images, prep: dict, tta: str = "none",
                batch_size: int = TrainConfig.eval_batch_size, device: str | torch.device = "cpu",
                precision: str = "auto") -> np.ndarray:
    """The network's raw logits (V, N, 7) for uint8 faces (N, 48, 48), one row block per TTA view."""
    model.eval()
    x_all = torch.as_tensor(np.require(images, requirements=["W"]))  # (a copy only of a read-only array)
    out = []
    for i in range(0, len(x_all), batch_size):
        x = normalize(x_all[i:i + batch_size].to(device).unsqueeze(1), prep)
        with autocast_for(device, precision):
            out.append(torch.stack([model(v).float() for v in eval_views(x, prep["crop_size"], tta)]).cpu())
    if not out:
        return np.zeros((1, 0, len(CLASSES)), np.float32)
    return torch.cat(out, 1).numpy()


def probabilities(logits: np.ndarray, prep: dict) -> np.ndarray:
    """(V, N, 7) view logits -> the checkpoint's probabilities (N, 7): its temperature, the views'
    average and its prior correction, in that order (fer.calibration)."""
    factor = prior_correction(prep) if prep.get("logit_adjust", 0.0) else None
    return scaled_probabilities(logits, prep.get("temperature", 1.0), factor).astype(np.float32)


def predict_proba(model: torch.nn.Module, images, prep: dict, tta: str = "none",
                  batch_size: int = TrainConfig.eval_batch_size, device: str | torch.device = "cpu",
                  precision: str = "auto") -> np.ndarray:
    """Class probabilities (N, 7) for uint8 faces (N, 48, 48), as the checkpoint's `prep` says."""
    return probabilities(view_logits(model, images, prep, tta, batch_size, device, precision), prep)


def predict_checkpoint(model: torch.nn.Module, payload: dict, images, device: str | torch.device = "cpu",
                       adjusted: bool = True, precision: str | None = None) -> np.ndarray:
    """Probabilities exactly as the checkpoint's run scored them: its preprocessing, TTA, precision
    and prior correction (adjusted=False leaves the correction out; `precision` overrides the run's,
    e.g. "fp32" for what an exported graph computes)."""
    cfg, prep = payload["train_config"], payload["preprocessing"]
    if not adjusted:
        prep = {**prep, "logit_adjust": 0.0}
    return predict_proba(model, images, prep, cfg.get("tta", "none"), device=device,
                         precision=precision or cfg.get("precision", "auto"))


def prior_factor(prior, tau: float) -> np.ndarray:
    """Per-class multipliers (7,) for post-hoc logit adjustment (Menon et al., 2021), clipped so
    only classes rarer than uniform are boosted: 1 / min(1, K * prior)^tau. Frequent classes keep
    their scores, so accuracy is spent only on the rare ones (disgust is 1.5% of FER2013)."""
    prior = np.asarray(prior, dtype=np.float64)
    return np.minimum(1.0, len(prior) * prior) ** -tau


def prior_correction(prep: dict) -> np.ndarray:
    """The (7,) multipliers a checkpoint's preprocessing applies to its probabilities (ones without
    a prior correction)."""
    tau = prep.get("logit_adjust", 0.0)
    return prior_factor(prep["class_prior"], tau) if tau else np.ones(len(CLASSES))


def adjust_for_prior(probs: np.ndarray, prep: dict) -> np.ndarray:
    """Probabilities (N, 7) reweighted by prior_factor(prep's prior, prep's logit_adjust), renormalised."""
    if not prep.get("logit_adjust", 0.0):
        return probs
    scaled = probs * prior_correction(prep).astype(probs.dtype)
    return scaled / scaled.sum(1, keepdims=True)


def balancing_tau(labels: np.ndarray, probs: np.ndarray, prior, within: float,
                  taus=np.linspace(0.0, 1.0, 21)) -> float:
    """The largest tau whose accuracy stays within `within` (0.01 = 1 point) of tau 0's:
    rare-class recall bought with a bounded share of accuracy."""
    base = (probs.argmax(1) == labels).mean()
    ok = [t for t in taus if ((probs * prior_factor(prior, t)).argmax(1) == labels).mean() >= base - within - 1e-12]
    return float(max(ok))


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
