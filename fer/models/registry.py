"""Models built by name, timm-style: families with a config dataclass, and presets.

A family (`cnn`, `dnn`) is a builder plus the dataclass whose fields are its YAML
keys; a preset (`seed_cnn`) is a family with fixed field values. A checkpoint stores
the family name and the resolved config, so it rebuilds its model alone.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from torch import nn

from fer.errors import ConfigError
from fer.fields import make_config


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    config_cls: type
    build: Callable[[Any], nn.Module]
    searchable: bool = True  # a sweep can search it (an ensemble is assembled from trained models instead)


_FAMILIES: dict[str, Family] = {}
_PRESETS: dict[str, tuple[str, dict]] = {}


def register_family(name: str, config_cls: type, searchable: bool = True):
    def wrap(build):
        _FAMILIES[name] = Family(name, config_cls, build, searchable)
        return build
    return wrap


def register_preset(name: str, family: str, **values):
    _PRESETS[name] = (family, values)


def family_names(searchable_only: bool = False) -> list[str]:
    return sorted(n for n, f in _FAMILIES.items() if f.searchable or not searchable_only)


def family_config(name: str) -> type:
    """The config dataclass of a family: its fields are the YAML keys under `model:`."""
    return _FAMILIES[name].config_cls


def list_models(searchable_only: bool = False) -> list[str]:
    """Family and preset names; `searchable_only`: those a run or a sweep trains (not an ensemble)."""
    families = family_names(searchable_only)
    return families + sorted(n for n, (family, _) in _PRESETS.items() if family in families)


def resolve(name: str, **overrides) -> tuple[str, Any]:
    """(family name, validated config dataclass) for a family or preset name."""
    if name in _PRESETS:
        family, values = _PRESETS[name]
        return family, make_config(_FAMILIES[family].config_cls, {**values, **overrides}, "model")
    if name in _FAMILIES:
        return name, make_config(_FAMILIES[name].config_cls, overrides, "model")
    raise ConfigError(f"model.name: unknown model {name!r} (known: {', '.join(list_models())})")


def create_model(name: str, **cfg) -> nn.Module:
    """Build a model by family or preset name; unknown keys are rejected."""
    family, config = resolve(name, **cfg)
    model = _FAMILIES[family].build(config)
    model.family, model.config = family, config
    return model


def model_from_spec(spec: dict) -> nn.Module:
    """The model a stored spec names: {"name": family or preset, **its config} (a checkpoint's
    `model` entry, a run config's `model:` block)."""
    return create_model(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
