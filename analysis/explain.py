"""What the report shows of one model's inside, computed before anything is drawn: saliency maps
and their randomisation check, first-layer kernels, activation-maximising patterns and the
activations of one face, as one result that analysis.report draws (analysis.plots)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from analysis import filters, saliency
from analysis.sources import ModelSource, chosen_images, eval_inputs


@dataclass(frozen=True)
class Options:
    images: list[int] | None = None  # saliency images by index; None picks a right and a wrong one per class
    layer: str | None = None  # activations.png's layer; None is the model's first activation
    filters_layer: str | None = None  # activation maximisation's layer; None is a middle conv
    n_filters: int = 16


class Explanation(NamedTuple):
    """One model's explanations. Arrays: `shown` (B, s, s) the cropped faces, each of `maps`
    (B, s, s); `kernels` (K, k, k) or None for a model without convs; `patterns` (n, s, s) or None;
    `activations` (C, h, w) or (1, C) for `layer` on the first face."""

    name: str
    images: np.ndarray  # indices into the judged images
    captions: list[str]
    shown: np.ndarray
    maps: dict[str, np.ndarray]
    randomisation: dict  # method -> {"spearman", "reliable"}
    mask_share: dict | None  # method -> attribution inside the decisive regions; None without masks
    kernels: np.ndarray | None
    pattern_layer: str | None
    patterns: np.ndarray | None
    layer: str
    activations: np.ndarray


def explain(m: ModelSource, opt: Options) -> Explanation:
    """Everything the saliency, filters and activations sections show of `m` (options checked by
    the report before it starts)."""
    idx, captions = chosen_images(m, opt.images)
    x, shown, masks = eval_inputs(m, idx)  # x (B, 1, s, s) normalised; shown (B, s, s); masks or None
    target = torch.as_tensor(m.preds[idx])
    maps = saliency.attribute_all(m.model, x, target)
    control = saliency.attribute_all(saliency.reinitialised(m.model), x, target)
    pattern_layer = opt.filters_layer or filters.default_pattern_layer(m.model)
    layer = opt.layer or m.model.first_activation
    return Explanation(
        m.name, idx, captions, shown, maps, saliency.randomisation_check(maps, control),
        saliency.mask_share(maps, masks) if masks is not None else None,
        filters.first_layer_kernels(m.model), pattern_layer,
        filters.maximise_activation(m.model, pattern_layer, opt.n_filters) if pattern_layer else None,
        layer, filters.activations(m.model, layer, x[:1]))
