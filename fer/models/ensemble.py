"""Ensembles of fer models, as one registered family: `create_model("ensemble", members=[...])`.

Members may differ in family, input standardisation, crop size, TTA and prior correction, so
each `Member` takes raw pixels and applies its own; the ensemble averages the members'
probabilities with their weights and returns the log of that average: logits whose softmax
is the ensemble's probabilities, and whose gradient (saliency) is the ensemble's.
An ensemble checkpoint's own preprocessing is the identity (mean 0, std 1/255: fer's
normalisation then hands the members raw 0-255 pixels), with no crop, TTA or correction.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from fer.models.registry import create_model, register_family
from fer.transforms import eval_views


class Member(nn.Module):
    """A model with its preprocessing: raw pixels (B, 1, 48, 48), 0-255 floats -> probabilities (B, 7)."""

    def __init__(self, model: nn.Module, mean: float, std: float, crop: int, tta: str, factor,
                 temperature: float = 1.0):
        super().__init__()
        self.model, self.mean, self.std, self.crop, self.tta = model, float(mean), float(std), int(crop), tta
        self.temperature = float(temperature)  # fer.calibration: logits / T before each view's softmax
        self.register_buffer("factor", torch.as_tensor(factor, dtype=torch.float32))  # (7,) prior correction

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels / 255.0 - self.mean) / self.std
        views = eval_views(x, self.crop, self.tta)
        probs = torch.stack([F.softmax(self.model(v).float() / self.temperature, 1) for v in views]).mean(0)
        scaled = probs * self.factor
        return scaled / scaled.sum(1, keepdim=True)


@dataclass
class EnsembleConfig:
    # one dict per member: model (name + config), mean, std, crop_size, tta, prior_factor (7), temperature,
    # weight, trial
    members: list = field(default_factory=list)

    def __post_init__(self):
        if not self.members:
            raise ValueError("members: an ensemble needs at least one member (python -m search ensemble builds one)")


class Ensemble(nn.Module):
    def __init__(self, config: EnsembleConfig):
        super().__init__()
        self.members = nn.ModuleList(
            Member(create_model(m["model"]["name"], **{k: v for k, v in m["model"].items() if k != "name"}),
                   m["mean"], m["std"], m["crop_size"], m["tta"], m["prior_factor"], m.get("temperature", 1.0))
            for m in config.members)
        weights = torch.tensor([float(m["weight"]) for m in config.members])
        self.register_buffer("weights", weights / weights.sum())  # (M,)
        # The layers analysis shows are the first member's; Grad-CAM has no one layer here (None: left out)
        first = self.members[0].model
        named = lambda name: name and f"members.0.model.{name}"  # noqa: E731
        self.first_conv, self.first_activation = named(first.first_conv), named(first.first_activation)
        self.last_conv_block = None

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        probs = sum(w * m(pixels) for w, m in zip(self.weights, self.members))  # (B, 7)
        return torch.log(probs.clamp_min(1e-12))


register_family("ensemble", EnsembleConfig, searchable=False)(Ensemble)
