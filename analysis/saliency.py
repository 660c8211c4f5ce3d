"""Attribution maps with Captum, and checks that they can be trusted.

Methods (one Captum class each): vanilla gradient (the report's saliency), SmoothGrad,
Integrated Gradients and Grad-CAM on the last conv block. `randomisation_check` is
Adebayo et al. (2018): a method whose maps barely change when the weights are
re-initialised explains the architecture, not what the model learned.
"""
from __future__ import annotations

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Saliency
from scipy.stats import spearmanr

METHODS = ("gradient", "smoothgrad", "integrated_gradients", "gradcam")
UNRELIABLE_RHO = 0.5  # rank correlation with a randomised model above this: the map ignores the weights


def _module(model: torch.nn.Module, name: str | None):
    return dict(model.named_modules()).get(name) if name else None


def attribute(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, method: str,
              smooth_samples: int = 16, ig_steps: int = 32) -> np.ndarray | None:
    """|attribution| (B, H, W) for inputs x (B, 1, H, W) and target classes (B,);
    None when the method does not apply (Grad-CAM needs a conv block)."""
    model.eval()
    x = x.detach().clone().requires_grad_(True)
    if method == "gradient":
        a = Saliency(model).attribute(x, target=target, abs=True)
    elif method == "smoothgrad":
        sigma = 0.15 * float(x.detach().max() - x.detach().min())
        a = NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=smooth_samples,
                                                   nt_samples_batch_size=smooth_samples, stdevs=sigma,
                                                   target=target, abs=True)
    elif method == "integrated_gradients":
        a = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=ig_steps,
                                                 internal_batch_size=64 * len(x))
    elif method == "gradcam":
        layer = _module(model, getattr(model, "last_conv_block", None))
        if layer is None:
            return None
        cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
        a = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    else:
        raise ValueError(f"unknown attribution method {method!r} (known: {', '.join(METHODS)})")
    return a.detach().abs().sum(1).numpy()  # (B, H, W)


def attribute_all(model, x, target, methods=METHODS) -> dict[str, np.ndarray]:
    maps = {m: attribute(model, x, target, m) for m in methods}
    return {m: a for m, a in maps.items() if a is not None}


def randomisation_check(trained: dict[str, np.ndarray], randomised: dict[str, np.ndarray]) -> dict[str, dict]:
    """Mean Spearman correlation per method between the trained and a re-initialised
    model's maps of the same images; a high correlation marks the method unreliable."""
    out = {}
    for method, maps in trained.items():
        if method not in randomised:
            continue
        rhos = [_spearman(a.ravel(), b.ravel()) for a, b in zip(maps, randomised[method])]
        rho = float(np.mean(rhos)) if rhos else float("nan")
        out[method] = {"spearman": rho, "reliable": bool(rho < UNRELIABLE_RHO)}
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation; 0 when either map is constant (a flat map shares no ranking)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def mask_share(maps: dict[str, np.ndarray], masks: np.ndarray) -> dict[str, dict]:
    """Share of each method's attribution mass inside the decisive regions, against the
    regions' share of the image (what a map that ignores the face would score)."""
    area = float(masks.mean())
    out = {}
    for method, a in maps.items():
        total = a.reshape(len(a), -1).sum(1)
        inside = (a * masks).reshape(len(a), -1).sum(1)
        share = float(np.mean(inside / np.maximum(total, 1e-12)))
        out[method] = {"share_inside": share, "area_share": area, "ratio": share / max(area, 1e-12)}
    return out


def reinitialised(model: torch.nn.Module, seed: int = 12345) -> torch.nn.Module:
    """The same architecture with fresh random weights (the check's control)."""
    import copy

    torch.manual_seed(seed)
    clone = copy.deepcopy(model)
    for m in clone.modules():
        if hasattr(m, "reset_parameters") and m is not clone:
            m.reset_parameters()
    return clone.eval()
