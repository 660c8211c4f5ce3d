"""Models built by name, timm-style: families with a config dataclass, and presets.

A family (`cnn`, `dnn`) is a builder plus the dataclass whose fields are its YAML
keys; a preset (`seed_cnn`) is a family with fixed field values. A checkpoint stores
the family name and the resolved config, so it rebuilds its model alone.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any

from torch import nn

from fer.errors import ConfigError


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


def list_models() -> list[str]:
    return sorted(_FAMILIES) + sorted(_PRESETS)


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


def make_config(cls: type, values: dict, prefix: str):
    """Instantiate a config dataclass from plain values, naming the key at fault on error."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields:
            raise ConfigError(f"{prefix}.{key}: unknown key (known: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    kwargs = {k: coerce(v, hints[k], f"{prefix}.{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # __post_init__'s checks; "key: ..." names a field
        raise ConfigError(f"{prefix}.{e}" if str(e).partition(":")[0] in fields else f"{prefix}: {e}") from None


def _expected(hint) -> str:
    """A type hint in words: `bool`, `one of 'auto'`."""
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    return getattr(hint, "__name__", str(hint))


def coerce(value, hint, key: str):
    """Check (and gently convert: int->float, list->tuple) a YAML value against a type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is getattr(__import__("types"), "UnionType", None):
        if value is None and type(None) in args:
            return None
        arms = [a for a in args if a is not type(None)]
        for arm in arms:  # the first arm that takes the value
            try:
                return coerce(value, arm, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {' or '.join(map(_expected, arms))}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item = args[0] if args else object
        return tuple(coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}")
    return value
