"""Preprocessing and augmentation on batched tensors, on whatever device the batch is.

Batches are (B, 1, H, W) float tensors; the randomness comes from one torch.Generator
so a seed fixes every crop, flip and rectangle. Nothing here loops over images.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # (fer.checkpoint imports this module)
    from fer.checkpoint import Preprocessing


def normalize(x: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """uint8 pixels (B, 1, H, W) -> standardised floats with the training set's mean and std."""
    return standardize(x, prep.mean, prep.std)


def standardize(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return (x.float() / 255.0 - mean) / std


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (hi - lo) + lo


def random_crop(x: torch.Tensor, size: int, pad: int, gen: torch.Generator) -> torch.Tensor:
    """A random size x size window of each zero-padded image: (B, 1, H, W) -> (B, 1, size, size)."""
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
    b, _, h, w = x.shape
    if (h, w) == (size, size):
        return x
    oy = torch.randint(0, h - size + 1, (b,), generator=gen, device=x.device)
    ox = torch.randint(0, w - size + 1, (b,), generator=gen, device=x.device)
    ar = torch.arange(size, device=x.device)
    rows = (oy[:, None] + ar)[:, :, None]  # (B, size, 1)
    cols = (ox[:, None] + ar)[:, None, :]  # (B, 1, size)
    return x[torch.arange(b, device=x.device)[:, None, None], 0, rows, cols].unsqueeze(1)


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_affine(x: torch.Tensor, rotation: float, scale: float, translate: float,
                  gen: torch.Generator) -> torch.Tensor:
    """Rotation (degrees), zoom and shift per image, by one batched grid_sample."""
    b, dev = x.shape[0], x.device
    angle = _uniform(gen, b, -rotation, rotation, dev) * math.pi / 180
    zoom = 1 + _uniform(gen, b, -scale, scale, dev)
    tx, ty = (_uniform(gen, b, -2 * translate, 2 * translate, dev) for _ in range(2))
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_erasing(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Zero one rectangle (2-25% of the area, aspect 0.3-3.3) in a share p of the images."""
    b, _, h, w = x.shape
    dev = x.device
    area = _uniform(gen, b, 0.02, 0.25, dev) * h * w
    aspect = torch.exp(_uniform(gen, b, math.log(0.3), math.log(3.3), dev))
    eh = torch.sqrt(area * aspect).clamp(1, h)
    ew = torch.sqrt(area / aspect).clamp(1, w)
    top = torch.rand(b, generator=gen, device=dev) * (h - eh)
    left = torch.rand(b, generator=gen, device=dev) * (w - ew)
    ys = torch.arange(h, device=dev)[None, :, None]
    xs = torch.arange(w, device=dev)[None, None, :]
    inside = ((ys >= top[:, None, None]) & (ys < (top + eh)[:, None, None])
              & (xs >= left[:, None, None]) & (xs < (left + ew)[:, None, None]))  # (B, H, W)
    chosen = torch.rand(b, generator=gen, device=dev) < p
    return x.masked_fill((inside & chosen[:, None, None]).unsqueeze(1), 0.0)


def augment(x: torch.Tensor, cfg, gen: torch.Generator) -> torch.Tensor:
    """The training-time views of a normalised batch, as TrainConfig asks."""
    x = random_crop(x, cfg.crop_size, cfg.crop_pad, gen)
    if cfg.flip:
        x = random_flip(x, gen)
    if cfg.rotation or cfg.scale or cfg.translate:
        x = random_affine(x, cfg.rotation, cfg.scale, cfg.translate, gen)
    if cfg.erasing:
        x = random_erasing(x, cfg.erasing, gen)
    return x


def beta_share(alpha: float, gen: torch.Generator) -> float:
    """One draw from Beta(alpha, alpha) by Johnk's method (two uniforms, accepted when their powers
    sum to at most 1), so that the run's own generator, not torch's global one, decides it: torch's
    Beta and Gamma samplers take no generator. Acceptance is over 1/2 for alpha <= 1."""
    while True:
        u, v = torch.rand(2, generator=gen, device=gen.device).double().tolist()
        a, b = u ** (1 / alpha), v ** (1 / alpha)
        if 0 < a + b <= 1:
            return a / (a + b)


def mixup(x: torch.Tensor, alpha: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """A batch blended with a shuffled copy of itself (Zhang et al. 2018): (lam x + (1 - lam) x[perm],
    perm, lam), lam ~ Beta(alpha, alpha) once per batch; the loss is blended with the same lam."""
    lam = beta_share(alpha, gen)
    perm = torch.randperm(x.shape[0], generator=gen, device=gen.device).to(x.device)
    return lam * x + (1 - lam) * x[perm], perm, lam


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """(B, 1, H, W) moved by (dy, dx) pixels, zeros coming in (as random_affine's padding)."""
    p = max(abs(dy), abs(dx))
    h, w = x.shape[-2:]
    padded = F.pad(x, (p, p, p, p))
    return padded[..., p - dy:p - dy + h, p - dx:p - dx + w]


def eval_views(x: torch.Tensor, crop_size: int, tta: str) -> list[torch.Tensor]:
    """The test-time views whose softmax outputs are averaged: centre crop, its flip,
    ten crops (four corners and centre, each flipped), or shifts: the centre crop and
    its 2-pixel shifts up, down, left and right, each flipped (for nets trained with
    shifts but without crops, such as the MLPs: they are not shift invariant)."""
    if tta == "shifts":
        centre = centre_crop(x, crop_size)
        views = [centre] + [shifted(centre, dy, dx) for dy, dx in ((2, 0), (-2, 0), (0, 2), (0, -2))]
        return views + [v.flip(-1) for v in views]
    if tta == "tencrop":
        h, w = x.shape[-2:]
        s = crop_size
        views = [x[..., :s, :s], x[..., :s, w - s:], x[..., h - s:, :s], x[..., h - s:, w - s:], centre_crop(x, s)]
        return views + [v.flip(-1) for v in views]
    centre = centre_crop(x, crop_size)
    return [centre, centre.flip(-1)] if tta == "flip" else [centre]
