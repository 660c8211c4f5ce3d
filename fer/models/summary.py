"""A Keras-style model summary, with Keras's way of counting parameters.

Keras counts batch norm's moving mean and variance as non-trainable parameters; the
report's totals (seed_cnn: 1,278,590 total, 1,276,606 trainable) follow that, so
buffers named running_mean/running_var count here too.
"""
from __future__ import annotations

import torch
from torch import nn

from fer.models.registry import model_from_spec


def count_params(model: nn.Module) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    stats = sum(b.numel() for n, b in model.named_buffers() if n.rsplit(".", 1)[-1] in ("running_mean", "running_var"))
    return {"total": trainable + frozen + stats, "trainable": trainable, "non_trainable": frozen + stats}


def spec_params(spec: dict) -> dict[str, int]:
    """count_params of the model a spec names ({"name", **config}), built on PyTorch's meta device:
    shapes without storage or initialisation. A parameter budget's bisection builds some 40
    candidates per suggestion, up to 30 times the base widths (hundreds of millions of weights):
    built on the CPU, they cost the sweep's driver about half a second and a gigabyte per DNN
    suggestion (benchmarks/BENCHMARKS.md, "A suggestion of the DNN space")."""
    with torch.device("meta"):
        return count_params(model_from_spec(spec))


def layer_table(model: nn.Module, input_size: int = 48) -> list[tuple[str, str, tuple, int]]:
    """(name, type, output shape without batch, own parameter count) for every leaf layer."""
    rows, hooks = [], []
    for name, mod in model.named_modules():
        if len(list(mod.children())) == 0:
            hooks.append(mod.register_forward_hook(
                lambda m, _, out, name=name: rows.append((name, type(m).__name__, tuple(out.shape[1:]), _own(m)))))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, input_size, input_size))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows


def _own(m: nn.Module) -> int:
    params = sum(p.numel() for p in m.parameters(recurse=False))
    stats = sum(b.numel() for n, b in m.named_buffers(recurse=False) if n in ("running_mean", "running_var"))
    return params + stats


def summary(model: nn.Module, title: str = "model", input_size: int = 48) -> str:
    rows = layer_table(model, input_size)
    width = max(32, *(len(n) + len(t) + 4 for n, t, _, _ in rows))
    lines = [f'Model: "{title}"', "_" * (width + 40),
             f"{'Layer (type)':<{width}}{'Output Shape':<26}{'Param #':>14}", "=" * (width + 40)]
    for name, kind, shape, n in rows:
        lines.append(f"{name + ' (' + kind + ')':<{width}}{str((None, *shape)):<26}{n:>14,}")
    counts = count_params(model)
    lines += ["=" * (width + 40), f"Total params: {counts['total']:,}",
              f"Trainable params: {counts['trainable']:,}", f"Non-trainable params: {counts['non_trainable']:,}",
              "_" * (width + 40)]
    return "\n".join(lines)
