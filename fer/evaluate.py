"""Predictions and metrics for a trained model; scikit-learn computes the numbers."""
from __future__ import annotations

import numpy as np
import torch

from fer.data import CLASSES
from fer.transforms import eval_views, normalize


@torch.no_grad()
def predict_proba(model: torch.nn.Module, images, prep: dict, tta: str = "none",
                  batch_size: int = 512, device: str | torch.device = "cpu", precision: str = "auto") -> np.ndarray:
    """Class probabilities (N, 7) for uint8 faces (N, 48, 48), averaged over the TTA views."""
    model.eval()
    x_all = torch.as_tensor(images)
    out = []
    for i in range(0, len(x_all), batch_size):
        x = normalize(x_all[i:i + batch_size].to(device).unsqueeze(1), prep)
        with autocast_for(device, precision):
            probs = [torch.softmax(model(v).float(), 1) for v in eval_views(x, prep["crop_size"], tta)]
        out.append(adjust_for_prior(torch.stack(probs).mean(0).cpu(), prep))
    return torch.cat(out).numpy() if out else np.zeros((0, len(CLASSES)), np.float32)


def predict_checkpoint(model: torch.nn.Module, payload: dict, images, device: str | torch.device = "cpu") -> np.ndarray:
    """Probabilities exactly as the checkpoint's run scored them: its preprocessing, TTA and precision."""
    cfg = payload["train_config"]
    return predict_proba(model, images, payload["preprocessing"], cfg.get("tta", "none"), device=device,
                         precision=cfg.get("precision", "auto"))


def adjust_for_prior(probs: torch.Tensor, prep: dict) -> torch.Tensor:
    """Post-hoc logit adjustment (Menon et al., 2021): p(y|x) / prior(y)^tau, renormalised.
    tau = 1 gives balanced-error-optimal predictions, so rare classes (disgust) get predicted."""
    tau = prep.get("logit_adjust", 0.0)
    if not tau:
        return probs
    scaled = probs * torch.tensor(prep["class_prior"], dtype=probs.dtype) ** -tau  # (B, 7)
    return scaled / scaled.sum(1, keepdim=True)


def autocast_for(device, precision: str = "auto"):
    """bf16 autocast when asked, or on CUDA under "auto"; fp32 otherwise (exact, seeded CPU runs)."""
    dev = torch.device(device)
    bf16 = precision == "bf16" or (precision == "auto" and dev.type == "cuda")
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16)


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """accuracy, macro_f1, n, loss (NLL of the averaged probabilities), per_class and confusion_matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    k = range(len(CLASSES))
    pred = probs.argmax(1)
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=list(k), zero_division=0)
    loss = float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean()) if len(labels) else 0.0
    return {
        "accuracy": float(accuracy_score(labels, pred)),
        "macro_f1": float(f1_score(labels, pred, labels=list(k), average="macro", zero_division=0)),
        "n": int(len(labels)),
        "loss": loss,
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, c in enumerate(CLASSES)},
        "confusion_matrix": confusion_matrix(labels, pred, labels=list(k)).tolist(),
    }
