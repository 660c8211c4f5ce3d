"""The CNN family: stages of convolutions with a report-style or plain head.

The report's network is `seed_cnn`: five blocks of [conv, BN, conv, BN, ReLU,
(avg-pool 2), dropout] with 16/32/64/128/256 channels and 9/5/3/3/3 kernels (no pool
after the last), then conv 3x3 to 7 channels, global average pooling and a dense
256-128-7 head. VGG-style nets (2x conv3x3-BN-ReLU stages, max-pool, GAP + linear) are
points of the same family.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fer.models.registry import register_family, register_preset


@dataclass(frozen=True)
class CNNConfig:
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    kernel_sizes: tuple[int, ...] = (9, 5, 3, 3, 3)  # one per block, or one for every block
    convs_per_block: int = 2
    pool: Literal["avg", "max", "none"] = "avg"
    pool_last: bool = False  # pool after the last block too
    batch_norm: bool = True
    act_per_conv: bool = False  # ReLU after every conv (VGG) or once per block (the report)
    dropout: float = 0.25  # after each block
    head: Literal["conv_gap", "gap", "flatten"] = "conv_gap"
    head_hidden: tuple[int, ...] = (256, 128)
    head_dropout: float = 0.25
    input_size: int = 48  # side of the (square) input; only `flatten` heads depend on it
    num_classes: int = 7

    def __post_init__(self):
        if len(self.kernel_sizes) == 1 and len(self.channels) > 1:
            object.__setattr__(self, "kernel_sizes", tuple(self.kernel_sizes) * len(self.channels))
        if len(self.kernel_sizes) != len(self.channels):
            raise ValueError(f"kernel_sizes has {len(self.kernel_sizes)} entries but channels has {len(self.channels)}")
        if not self.channels or self.convs_per_block < 1:
            raise ValueError("need at least one block of at least one conv")

    def fixed_side(self) -> int | None:
        """Only a flatten head sizes its first linear layer from the input side."""
        return self.input_size if self.head == "flatten" else None


class CNN(nn.Module):
    """Named layers: blocks `block1..blockN` (each with conv1, bn1, ..., act, pool, drop),
    then `head`. `first_conv`, `first_activation` and `last_conv_block` name the layers
    the analysis looks at."""

    def __init__(self, cfg: CNNConfig):
        super().__init__()
        blocks, c_in = [], 1
        for i, (c, k) in enumerate(zip(cfg.channels, cfg.kernel_sizes)):
            last = i == len(cfg.channels) - 1
            blocks.append((f"block{i + 1}", self._block(cfg, c_in, c, k, pool=not last or cfg.pool_last)))
            c_in = c
        self.features = nn.Sequential(OrderedDict(blocks))
        self.head = self._head(cfg, c_in)
        act = "act1" if cfg.act_per_conv else "act"
        last_act = f"act{cfg.convs_per_block}" if cfg.act_per_conv else "act"
        self.first_conv, self.first_activation = "features.block1.conv1", f"features.block1.{act}"
        # Grad-CAM's layer: the last block's activation, before its pooling halves the map again.
        self.last_conv_block = f"features.{blocks[-1][0]}.{last_act}"
        # the filters whose patterns analysis draws: a middle conv (the first are plain edges, the last too abstract)
        convs = [f"features.{n}" for n, m in self.features.named_modules() if isinstance(m, nn.Conv2d)]
        self.pattern_layer = convs[len(convs) // 2]

    @staticmethod
    def _block(cfg: CNNConfig, c_in: int, c: int, k: int, pool: bool) -> nn.Sequential:
        layers = []
        for j in range(1, cfg.convs_per_block + 1):
            layers.append((f"conv{j}", nn.Conv2d(c_in if j == 1 else c, c, k, padding=k // 2, bias=True)))
            if cfg.batch_norm:
                layers.append((f"bn{j}", nn.BatchNorm2d(c)))
            if cfg.act_per_conv:
                layers.append((f"act{j}", nn.ReLU(inplace=False)))
        if not cfg.act_per_conv:
            layers.append(("act", nn.ReLU(inplace=False)))
        if pool and cfg.pool != "none":
            layers.append(("pool", nn.AvgPool2d(2) if cfg.pool == "avg" else nn.MaxPool2d(2)))
        if cfg.dropout > 0:
            layers.append(("drop", nn.Dropout(cfg.dropout)))
        return nn.Sequential(OrderedDict(layers))

    @staticmethod
    def _head(cfg: CNNConfig, c_in: int) -> nn.Sequential:
        layers = []
        if cfg.head == "conv_gap":  # the report: conv to one map per class, GAP, then dense layers
            layers += [("conv", nn.Conv2d(c_in, cfg.num_classes, 3, padding=1)), ("gap", nn.AdaptiveAvgPool2d(1)),
                       ("flatten", nn.Flatten())]
            width = cfg.num_classes
        elif cfg.head == "gap":
            layers += [("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]
            width = c_in
        else:
            n_pools = sum(1 for i in range(len(cfg.channels)) if cfg.pool != "none"
                          and (i < len(cfg.channels) - 1 or cfg.pool_last))
            side = cfg.input_size // 2**n_pools
            layers.append(("flatten", nn.Flatten()))
            width = c_in * side * side
        for i, h in enumerate(cfg.head_hidden):
            layers += [(f"fc{i + 1}", nn.Linear(width, h)), (f"act{i + 1}", nn.ReLU())]
            if cfg.head_dropout > 0:
                layers.append((f"drop{i + 1}", nn.Dropout(cfg.head_dropout)))
            width = h
        if cfg.head != "conv_gap" and not cfg.head_hidden and cfg.head_dropout > 0:
            layers.append(("drop", nn.Dropout(cfg.head_dropout)))
        layers.append(("out", nn.Linear(width, cfg.num_classes)))
        return nn.Sequential(OrderedDict(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) -> (B, classes) logits
        return self.head(self.features(x))


@register_family("cnn", CNNConfig)
def build_cnn(cfg: CNNConfig) -> CNN:
    return CNN(cfg)


register_preset("seed_cnn", "cnn")  # the report's CNN: CNNConfig's defaults
register_preset("vgg_cnn", "cnn", channels=(32, 64, 128, 256), kernel_sizes=(3,), pool="max",
                pool_last=True, act_per_conv=True, dropout=0.0, head="gap", head_hidden=(), head_dropout=0.3)
register_preset("small_cnn", "cnn", channels=(32, 64, 128), kernel_sizes=(3,), pool="max", pool_last=True,
                act_per_conv=True, dropout=0.0, head="gap", head_hidden=(), head_dropout=0.2)
