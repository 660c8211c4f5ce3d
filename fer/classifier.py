"""A model with its preprocessing: the one place where raw faces become class probabilities.

    pixels (B, 1, H, W), 0-255 -> / 255, the training set's mean and std -> the checkpoint's
    test-time views (fer.transforms.eval_views) -> the network -> logits / T, softmax per
    view, mean over views, prior correction (fer.calibration.combine_views) -> (B, 7)

Evaluation and prediction (fer.evaluate), each member of an ensemble (fer.models.ensemble)
and the exported graph (fer.ship.export) all run this module, so they cannot drift apart.
`view_logits` stops before the softmax: training fits the temperature and the prior
correction on those logits, then scores them with the same `combine_views`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from fer.calibration import combine_views, prior_correction
from fer.transforms import eval_views, standardize

if TYPE_CHECKING:  # (fer.checkpoint imports this module)
    from fer.checkpoint import Preprocessing


class Classifier(nn.Module):
    """Raw pixels (B, 1, H, W), 0-255 (uint8 or float) -> probabilities (B, 7)."""

    def __init__(self, model: nn.Module, mean: float, std: float, crop: int, tta: str = "none", factor=None,
                 temperature: float = 1.0):
        super().__init__()
        self.model, self.mean, self.std, self.crop, self.tta = model, float(mean), float(std), int(crop), tta
        self.temperature = float(temperature)  # fer.calibration: logits / T before each view's softmax
        factor = torch.ones(7) if factor is None else torch.as_tensor(factor, dtype=torch.float32)
        self.register_buffer("factor", factor.float())  # (7,) prior correction

    @classmethod
    def of(cls, model: nn.Module, prep: Preprocessing, tta: str = "none") -> Classifier:
        """The classifier a checkpoint's preprocessing dict (mean, std, crop_size, temperature,
        class_prior, logit_adjust) and TTA describe around `model`."""
        return cls(model, prep.mean, prep.std, prep.crop_size, tta, prior_correction(prep),
                   prep.temperature)

    def view_logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """(V, B, 7) float32 logits, one block per test-time view."""
        x = standardize(pixels, self.mean, self.std)
        return torch.stack([self.model(v).float() for v in eval_views(x, self.crop, self.tta)])

    def combine(self, view_logits: torch.Tensor) -> torch.Tensor:
        return combine_views(view_logits, self.temperature, self.factor)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.combine(self.view_logits(pixels))
