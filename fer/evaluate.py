"""Predictions and metrics for a trained model; scikit-learn computes the numbers."""
from __future__ import annotations

import numpy as np
import torch

from fer.data import CLASSES
from fer.transforms import eval_views, normalize


@torch.no_grad()
def predict_proba(model: torch.nn.Module, images, prep: dict, tta: str = "none",
                  batch_size: int = 512, device: str | torch.device = "cpu") -> np.ndarray:
    """Class probabilities (N, 7) for uint8 faces (N, 48, 48), averaged over the TTA views."""
    model.eval()
    x_all = torch.as_tensor(images)
    out = []
    for i in range(0, len(x_all), batch_size):
        x = normalize(x_all[i:i + batch_size].to(device).unsqueeze(1), prep)
        with autocast_for(device):
            probs = [torch.softmax(model(v).float(), 1) for v in eval_views(x, prep["crop_size"], tta)]
        out.append(torch.stack(probs).mean(0).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, len(CLASSES)), np.float32)


def autocast_for(device):
    """bf16 autocast on CUDA; a no-op context elsewhere (CPU keeps fp32 for exact, seeded runs)."""
    dev = torch.device(device)
    return torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)


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
