"""Ensembles of fer models, as one registered family: `create_model("ensemble", members=[...])`.

Members may differ in family, input standardisation, crop size, TTA and prior correction, so
each member is a fer.classifier.Classifier: it takes raw pixels and applies its own; the ensemble averages the members'
probabilities with their weights and returns the log of that average: logits whose softmax
is the ensemble's probabilities, and whose gradient (saliency) is the ensemble's.
An ensemble checkpoint's own preprocessing is the identity (mean 0, std 1/255: fer's
normalisation then hands the members raw 0-255 pixels), with no crop, TTA or correction.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
from torch import nn

from fer.classifier import Classifier
from fer.fields import FieldError
from fer.models.registry import model_from_spec, register_family


@dataclass(frozen=True)
class Member:
    """One member of an ensemble, as its checkpoint stores it (a plain dict: `as_dict`, `from_dict`):
    the member's model spec and everything its Classifier applies (fer.ship.ensemble.member_entry
    fills it from the member's checkpoint)."""

    model: dict  # name + config
    mean: float
    std: float
    crop_size: int
    tta: str
    prior_factor: tuple[float, ...]  # (7,) multipliers of its prior correction
    temperature: float = 1.0
    weight: float = 1.0  # share of the ensemble's average
    trial: str = ""  # the sweep trial it came from

    def as_dict(self) -> dict:
        return {**asdict(self), "model": dict(self.model), "prior_factor": list(self.prior_factor)}

    @classmethod
    def from_dict(cls, entry: dict) -> Member:
        names = {f.name for f in fields(cls)}
        if unknown := set(entry) - names:
            raise FieldError("members", f"unknown member key(s) {', '.join(sorted(unknown))}")
        try:
            return cls(**{**entry, "prior_factor": tuple(entry["prior_factor"])})
        except (KeyError, TypeError) as e:
            raise FieldError("members", f"a member entry is incomplete ({e})") from None


@dataclass
class EnsembleConfig:
    members: list = field(default_factory=list)  # Member.as_dict() entries, as the checkpoint stores them

    def __post_init__(self):
        if not self.members:
            raise FieldError("members", "an ensemble needs at least one member (python -m search ensemble builds one)")


class Ensemble(nn.Module):
    def __init__(self, config: EnsembleConfig):
        super().__init__()
        members = [Member.from_dict(m) for m in config.members]
        self.members = nn.ModuleList(
            Classifier(model_from_spec(m.model), m.mean, m.std, m.crop_size, m.tta, m.prior_factor, m.temperature)
            for m in members)
        weights = torch.tensor([m.weight for m in members])
        self.register_buffer("weights", weights / weights.sum())  # (M,)
        # The layers analysis shows are the first member's; Grad-CAM has no one layer here (None: left out)
        first = self.members[0].model
        named = lambda name: name and f"members.0.model.{name}"  # noqa: E731
        self.first_conv, self.first_activation = named(first.first_conv), named(first.first_activation)
        self.last_conv_block = self.pattern_layer = None

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        probs = sum(w * m(pixels) for w, m in zip(self.weights, self.members))  # (B, 7)
        return torch.log(probs.clamp_min(1e-12))


register_family("ensemble", EnsembleConfig, searchable=False)(Ensemble)
