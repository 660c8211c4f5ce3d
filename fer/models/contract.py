"""The model contract: what every registered model offers training, analysis and export, timm-
style (timm declares `feature_info` and `get_classifier` and tests every model against them).

- `forward`: standardised faces (B, 1, s, s) -> class logits (B, 7), s the model's input side
  (`config.input_size` where the family fixes one, else any crop of 48 or less).
- Layer roles, dotted names of submodules (`model.get_submodule(name)`), None where the family
  has no such layer: `first_conv` (the filters analysis draws), `first_activation` (the maps of
  activations.png), `last_conv_block` (Grad-CAM's layer), `pattern_layer` (the conv whose
  filters' maximising inputs analysis draws: a middle one).
- `family` and `config`: the registry name and the validated config dataclass it was built from
  (set by create_model), which a checkpoint stores to rebuild it.

`check` lists where a model falls short; tests/fer/test_models.py runs it on every registered
name. Analysis asks these roles, never a family's layer names.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from fer.data import CLASSES

ROLES = ("first_conv", "first_activation", "last_conv_block", "pattern_layer")


@runtime_checkable
class FerModel(Protocol):
    first_conv: str | None
    first_activation: str | None
    last_conv_block: str | None
    pattern_layer: str | None
    family: str
    config: Any

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...


def input_side(model: nn.Module) -> int:
    return int(getattr(model.config, "input_size", 48))


def check(model: nn.Module) -> list[str]:
    """Every way `model` breaks the contract (empty: it keeps it)."""
    problems = [f"no attribute {a!r}" for a in (*ROLES, "family", "config") if not hasattr(model, a)]
    if problems:
        return problems
    for role in ROLES:
        name = getattr(model, role)
        if name is None:
            continue
        try:
            model.get_submodule(name)
        except AttributeError:
            problems.append(f"{role} {name!r} is not a submodule")
    side = input_side(model)
    with torch.no_grad():
        out = model.eval()(torch.zeros(2, 1, side, side))
    if tuple(out.shape) != (2, len(CLASSES)):
        problems.append(f"forward gives {tuple(out.shape)} for 2 faces, not (2, {len(CLASSES)})")
    return problems
