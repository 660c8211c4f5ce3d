"""Built-in synthetic faces: 48x48 grayscale, 7 expressions decided by local features.

The class is carried only by the mouth (shape, openness, tilt), the brows (height,
slant) and the eyes (openness); pose, scale, lighting and noise are random nuisances
that keep a pixel-linear model well below a small CNN. Each image comes with the mask
of its decisive regions, which the analysis uses to check saliency maps.
Everything is drawn as soft shapes on a batch of coordinate grids: (N, 48, 48) arrays.
"""
from __future__ import annotations

import hashlib
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np

from fer.data.dataset import CLASSES, FaceSet
from fer.data.splits import SPLITS

# Per class: eye openness, brow raise, brow slant (+ = inner end down), mouth half-width,
# mouth curve (+ = corners up), mouth tilt, mouth open height, mouth open width.
_EXPRESSIONS = {
    "angry":    dict(eye=0.55, raise_=-0.06, slant=0.12, width=0.22, curve=0.00, tilt=0.0, open_h=0.00, open_w=0.0),
    "disgust":  dict(eye=0.55, raise_=-0.04, slant=0.00, width=0.26, curve=0.00, tilt=0.14, open_h=0.00, open_w=0.0),
    "fear":     dict(eye=1.50, raise_=0.08, slant=-0.10, width=0.30, curve=0.00, tilt=0.0, open_h=0.08, open_w=0.28),
    "happy":    dict(eye=0.90, raise_=0.00, slant=0.00, width=0.36, curve=0.16, tilt=0.0, open_h=0.00, open_w=0.0),
    "sad":      dict(eye=0.85, raise_=0.02, slant=-0.12, width=0.28, curve=-0.13, tilt=0.0, open_h=0.00, open_w=0.0),
    "surprise": dict(eye=1.50, raise_=0.14, slant=0.00, width=0.14, curve=0.00, tilt=0.0, open_h=0.20, open_w=0.14),
    "neutral":  dict(eye=1.00, raise_=0.00, slant=0.00, width=0.28, curve=0.00, tilt=0.0, open_h=0.00, open_w=0.0),
}
assert tuple(_EXPRESSIONS) == CLASSES


@dataclass(frozen=True)
class SyntheticSpec:
    n_per_class: int = 600
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)  # Training, PublicTest, PrivateTest


def make_synthetic(spec: SyntheticSpec = SyntheticSpec()) -> FaceSet:
    """Deterministic for a given spec: the same seed draws the same faces."""
    rng = np.random.default_rng(spec.seed)
    labels = rng.permutation(np.repeat(np.arange(len(CLASSES)), spec.n_per_class))
    n = len(labels)
    u, v = _face_coordinates(rng, n)
    # every per-face parameter in float32, as u and v are: a float64 one would make each shape
    # drawn with it (N, 48, 48) float64, twice the time
    expr = {k: np.array([_EXPRESSIONS[c][k] for c in CLASSES], np.float32)[labels][:, None, None]
            for k in _EXPRESSIONS["neutral"]}
    jitter = lambda scale: rng.normal(0, scale, (n, 1, 1)).astype(np.float32)  # noqa: E731
    side = np.where(rng.random((n, 1, 1)) < 0.5, np.float32(-1), np.float32(1))  # which corner a disgust mouth lifts
    face = _sigmoid((1 - u**2 - (v / 1.25) ** 2) / 0.05)
    ink = np.maximum.reduce([
        _eyes(u, v, expr["eye"] * np.exp(jitter(0.12))),
        _brows(u, v, expr["raise_"] + jitter(0.02), expr["slant"] + jitter(0.025)),
        _mouth(u, v, expr["width"] * np.exp(jitter(0.08)), expr["curve"] + jitter(0.025),
               expr["tilt"] * side + jitter(0.02), expr["open_h"] * np.exp(jitter(0.1)), expr["open_w"]),
        0.5 * _line(u, v, 0.0, 0.05, 0.0, 0.18, 0.035),  # nose: the same in every class
    ])
    images = _shade(rng, face, ink, n)
    masks = _decisive_regions(u, v)
    split = _assign_splits(rng, labels, spec.split_fractions)
    return FaceSet(images=images, labels=labels.astype(np.int64), split=split, source="synthetic", masks=masks)


def cached_synthetic(spec: SyntheticSpec, cache) -> FaceSet:
    """make_synthetic(spec) through an ArrayCache (fer.data.cache): drawing 4,200 faces takes
    seconds of float maths, reading them back milliseconds. The key names the spec and this
    module's source, so an edit to how faces are drawn draws them again."""
    code = hashlib.sha256(Path(__file__).read_bytes() + repr(astuple(spec)).encode()).hexdigest()[:16]
    key = f"synthetic-{code}"
    arrays = cache.get(key)
    if arrays is not None and set(arrays) == {"images", "labels", "split", "masks"}:
        return FaceSet(source="synthetic", **arrays)
    faces = make_synthetic(spec)
    cache.put(key, {"images": faces.images, "labels": faces.labels, "split": faces.split, "masks": faces.masks})
    return faces


def _per_face(rng, n, low, high):
    """One uniform draw per face, (N, 1, 1) float32, to broadcast over its pixels."""
    return rng.uniform(low, high, (n, 1, 1)).astype(np.float32)


def _sigmoid(x):
    return 1 / (1 + np.exp(-np.clip(x, -30, 30)))


def _face_coordinates(rng, n):
    """Face-local coordinates (u, v) of every pixel under a random pose: (N, 48, 48) each.

    The face spans u in [-1, 1], v in [-1.25, 1.25]; v grows downwards.
    """
    y, x = np.mgrid[0:48, 0:48].astype(np.float32)  # float32: half the time of every shape drawn on u, v
    draw = lambda low, high: _per_face(rng, n, low, high)  # noqa: E731
    cx, cy = 23.5 + draw(-3, 3), 23.5 + draw(-3, 3)
    angle = np.deg2rad(draw(-12, 12))
    scale = 17.0 * draw(0.85, 1.1)  # pixels per face unit
    dx, dy = x - cx, y - cy
    cos, sin = np.cos(angle), np.sin(angle)
    return (cos * dx + sin * dy) / scale, (-sin * dx + cos * dy) / scale


def _ellipse(u, v, cu, cv, ru, rv):
    r = ((u - cu) / ru) ** 2 + ((v - cv) / np.maximum(rv, 1e-3)) ** 2
    return _sigmoid((1 - r) / 0.25)


def _line(u, v, u0, v0, u1, v1, thick):
    """Soft segment from (u0, v0) to (u1, v1)."""
    du, dv = u1 - u0, v1 - v0
    t = np.clip(((u - u0) * du + (v - v0) * dv) / (du**2 + dv**2), 0, 1)
    dist2 = (u - u0 - t * du) ** 2 + (v - v0 - t * dv) ** 2
    return np.exp(-dist2 / thick**2)


def _eyes(u, v, openness):
    return np.maximum(_ellipse(u, v, -0.38, -0.2, 0.15, 0.07 * openness),
                      _ellipse(u, v, 0.38, -0.2, 0.15, 0.07 * openness))


def _brows(u, v, raise_, slant):
    """Brows over the eyes; slant > 0 lowers the inner ends (a frown)."""
    h = -0.45 - raise_
    return np.maximum(_line(u, v, -0.58, h - slant, -0.18, h + slant, 0.045),
                      _line(u, v, 0.18, h + slant, 0.58, h - slant, 0.045))


def _mouth(u, v, width, curve, tilt, open_h, open_w):
    """A curved lip line (corners raised by `curve`, tilted by `tilt`) and an open cavity."""
    s = np.clip(u / width, -1.2, 1.2)
    centre = 0.52 - curve * s**2 + curve * 0.3 - tilt * s
    lip = np.exp(-((v - centre) / 0.045) ** 2) * _sigmoid((width - np.abs(u)) / 0.03)
    cavity = _ellipse(u, v, 0.0, 0.52, np.maximum(open_w, 1e-3), open_h) * (open_h > 0)
    return np.maximum(lip, cavity)


def _shade(rng, face, ink, n):
    """Grey levels: background and skin under a random light gradient, dark features, noise."""
    y, x = (np.mgrid[0:48, 0:48] / 47.0 - 0.5).astype(np.float32)
    draw = lambda low, high: _per_face(rng, n, low, high)  # noqa: E731
    phi = draw(0, 2 * np.pi)
    light = draw(-50, 50) * (np.cos(phi) * x + np.sin(phi) * y)
    background, skin, depth = draw(20, 110), draw(130, 210), draw(0.45, 0.8)
    img = background * (1 - face) + skin * face * (1 - depth * ink) + light
    img += rng.standard_normal(img.shape, np.float32) * draw(3, 14)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _decisive_regions(u, v):
    """Eyes with brows, and the mouth: the only places where classes differ."""
    eyes = (np.abs(np.abs(u) - 0.38) < 0.3) & (v > -0.72) & (v < -0.05)
    mouth = (np.abs(u) < 0.5) & (v > 0.22) & (v < 0.85)
    return eyes | mouth


def _assign_splits(rng, labels, fractions):
    """Stratified split tags (int8 index into SPLITS), so every split has every class."""
    split = np.empty(len(labels), np.int8)
    for c in range(len(CLASSES)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for code, part in enumerate(np.split(idx, cuts)):
            split[part] = code
    assert len(fractions) == len(SPLITS)
    return split
