"""The DNN family: a multilayer perceptron on the flattened 48x48 face.

`seed_dnn` is the report's 2304-480-240-128-100-70-48-7 network with dropout. With
`input_pool: 2` the first layer sees a 24x24 average-pooled face, which frees three
quarters of the first layer's weights for width and depth at the same budget.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fer.models.registry import register_family, register_preset

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "elu": nn.ELU}


@dataclass(frozen=True)
class DNNConfig:
    widths: tuple[int, ...] = (480, 240, 128, 100, 70, 48)
    dropout: float = 0.2
    norm: Literal["none", "batch", "layer"] = "none"
    activation: Literal["relu", "gelu", "silu", "elu"] = "relu"
    input_size: int = 48
    input_pool: int = 1  # average k x k pixel blocks first (no parameters): 2 feeds a 24x24 face
    num_classes: int = 7

    def __post_init__(self):
        if self.input_pool < 1 or self.input_size % self.input_pool:
            raise ValueError(f"input_pool {self.input_pool} must be >= 1 and divide input_size {self.input_size}")

    def fixed_side(self) -> int:
        """Its first layer takes every pixel: the input side is part of the model."""
        return self.input_size


class DNN(nn.Module):
    """Named layers `fc1..fcN` (each with norm, act, drop) and `out`. It has no conv, so
    `first_conv` and `last_conv_block` are None."""

    def __init__(self, cfg: DNNConfig):
        super().__init__()
        layers = [("pool", nn.AvgPool2d(cfg.input_pool))] if cfg.input_pool > 1 else []
        layers.append(("flatten", nn.Flatten()))
        width = (cfg.input_size // cfg.input_pool) ** 2
        for i, w in enumerate(cfg.widths, 1):
            layers.append((f"fc{i}", nn.Linear(width, w)))
            if cfg.norm == "batch":
                layers.append((f"bn{i}", nn.BatchNorm1d(w)))
            elif cfg.norm == "layer":
                layers.append((f"ln{i}", nn.LayerNorm(w)))
            layers.append((f"act{i}", _ACTIVATIONS[cfg.activation]()))
            if cfg.dropout > 0:
                layers.append((f"drop{i}", nn.Dropout(cfg.dropout)))
            width = w
        layers.append(("out", nn.Linear(width, cfg.num_classes)))
        self.layers = nn.Sequential(OrderedDict(layers))
        self.first_conv, self.last_conv_block, self.pattern_layer = None, None, None
        self.first_activation = "layers.act1" if cfg.widths else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) -> (B, classes) logits
        return self.layers(x)


@register_family("dnn", DNNConfig)
def build_dnn(cfg: DNNConfig) -> DNN:
    return DNN(cfg)


register_preset("seed_dnn", "dnn")
