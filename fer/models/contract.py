"""The model contract: what every registered model offers training, analysis and export, timm-
style (timm declares `feature_info` and `get_classifier` and tests every model against them).

- `forward`: standardised faces (B, 1, s, s) -> class logits (B, 7), s the model's input side
  (`config.input_size` where the config's `fixed_side()` says the model needs it, else any
  crop of 48 or less); `backward` reaches every trainable parameter.
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


def fixed_side(config: Any) -> int | None:
    """The input side a model of `config` requires (a DNN's, a flatten-headed CNN's), None where any
    crop of 48 or less works: each family's config says so in `fixed_side()`; training asks it to
    refuse a crop the model cannot take."""
    ask = getattr(config, "fixed_side", None)
    return ask() if ask else None


def input_side(model: nn.Module) -> int:
    """The side of the faces the model was configured for (48 unless its config says otherwise)."""
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
    try:
        out = model.train()(torch.randn(2, 1, side, side))  # train mode: dropout and batch norm as in training
        if tuple(out.shape) != (2, len(CLASSES)):
            return problems + [f"forward gives {tuple(out.shape)} for 2 faces, not (2, {len(CLASSES)})"]
        model.zero_grad(set_to_none=True)
        out.square().sum().backward()
        return problems + [f"backward leaves {name} without a gradient" for name, p in model.named_parameters()
                           if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()  # as the check found it for every reader: analysis, export
