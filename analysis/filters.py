"""What the convolutions respond to: first-layer kernels, activation maximisation, and
one image's activation maps (the report's figure for image 356)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fer.optim import Adam


def first_layer_kernels(model: torch.nn.Module) -> np.ndarray | None:
    """(C_out, k, k) weights of the first conv, or None for a model without convs."""
    name = getattr(model, "first_conv", None)
    if not name:
        return None
    return dict(model.named_modules())[name].weight.detach()[:, 0].numpy()


def layer_output(model: torch.nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """The output of a named layer for input x (a forward hook; the model is unchanged)."""
    modules = dict(model.named_modules())
    if layer not in modules:
        raise KeyError(layer)
    out = {}
    handle = modules[layer].register_forward_hook(lambda m, i, o: out.setdefault("y", o))
    try:
        model.eval()
        model(x)
    finally:
        handle.remove()
    return out["y"]


@torch.no_grad()
def output_dims(model: torch.nn.Module, size: int = 48) -> dict[str, int]:
    """{layer name: number of dimensions of its output} for one (1, 1, size, size) input;
    4 is conv feature maps, 2 a vector per image. Layers whose output is not a tensor are left out."""
    dims, hooks = {}, []

    def record(name):
        def hook(module, inputs, output) -> None:  # returns None: the output passes unchanged
            if torch.is_tensor(output):
                dims.setdefault(name, output.dim())
        return hook

    for name, module in model.named_modules():
        if name:
            hooks.append(module.register_forward_hook(record(name)))
    try:
        model.eval()
        model(torch.zeros(1, 1, size, size))
    finally:
        for h in hooks:
            h.remove()
    return dims


@torch.no_grad()
def activations(model: torch.nn.Module, layer: str, x: torch.Tensor) -> np.ndarray:
    """(C, H, W) maps of a conv layer (or (1, 1, F) for a dense one) for one image x (1, 1, H, W)."""
    y = layer_output(model, layer, x)[0]
    return y.numpy() if y.dim() == 3 else y.reshape(1, 1, -1).numpy()


def maximise_activation(model: torch.nn.Module, layer: str, n_filters: int = 16, size: int = 48,
                        steps: int = 96, lr: float = 0.05, jitter: int = 2, tv_weight: float = 0.3,
                        seed: int = 0) -> np.ndarray:
    """Inputs (n, size, size) that maximise the mean activation of each of the first n
    filters of `layer`: gradient ascent from small noise, with random jitter (rolls)
    and a total-variation prior so the patterns are smooth rather than adversarial noise."""
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    channels = layer_output(model, layer, torch.zeros(1, 1, size, size)).shape[1]
    n = min(n_filters, channels)
    x = (0.1 * torch.randn(n, 1, size, size, generator=gen)).requires_grad_(True)
    opt = Adam([x], lr=lr)  # fer's: torch.optim's update without torch._dynamo's import
    idx = torch.arange(n)
    for _ in range(steps):
        dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=gen))
        y = layer_output(model, layer, torch.roll(x, (dy, dx), (2, 3)))  # (n, C, h, w)
        act = y[idx, idx].flatten(1).mean(1)  # each image drives its own filter
        tv = (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
        loss = -act.sum() + tv_weight * n * tv + 1e-3 * (x**2).mean() * n
        (x.grad,) = torch.autograd.grad(loss, x)
        opt.step()
    return F.instance_norm(x.detach()).squeeze(1).numpy()


def default_pattern_layer(model: torch.nn.Module) -> str | None:
    """The conv layer the model contract names for filter patterns (fer.models.contract)."""
    return model.pattern_layer
