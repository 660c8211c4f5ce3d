"""Typed config dataclasses, one source of names, types, defaults and help: YAML values become
instances with one-line errors naming the key (`make_config`), and the fields a command line
may set become its options (`add_options`, `given`), so the CLI, the files and the docs agree.

A field is an option when declared with `option(help=...)`; its type hint gives the parser
(Literal: choices, bool: --x/--no-x), its `cli_type` a stricter one (a positive number), and
its default is shown in --help. A field's range is stated once, as its `limit` (`option(...,
limit=...)` or `limited(...)`): `check_limits` applies it to a value from a file, and the
option's parser to a value from the command line, in the same words. Other `__post_init__`
checks raise `FieldError(key, reason)`.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import NamedTuple

from fer.errors import ConfigError


class FieldError(ValueError):
    """A config field's value fails its check; make_config names it as PREFIX.KEY."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


class Limit(NamedTuple):
    """A field's range: `ok(value)`, and the range in words (`>= 1`, `in [0, 1)`)."""

    words: str
    ok: Callable[[object], bool]


def option(help: str, default=dataclasses.MISSING, *, default_factory=dataclasses.MISSING,
           cli_type: Callable[[str], object] | None = None, limit: Limit | None = None):
    """A dataclass field that is also a command-line option (--name-with-dashes)."""
    meta = {"help": help, "cli_type": cli_type, "limit": limit}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def limited(default, words: str, ok: Callable[[object], bool]):
    """A dataclass field (not an option) with a range."""
    return dataclasses.field(default=default, metadata={"limit": Limit(words, ok)})


def check_limits(obj) -> None:
    """FieldError for the first field of `obj` that is a non-finite number or outside its limit
    (None, where allowed, means unset and is not checked)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):  # NaN and inf pass comparisons as False
            raise FieldError(f.name, f"must be a finite number, got {value}")
        limit = f.metadata.get("limit")
        if limit is not None and value is not None and not isinstance(value, str) and not limit.ok(value):
            raise FieldError(f.name, f"must be {limit.words}, got {value!r}")


def _within(hint, limit: Limit) -> Callable[[str], object]:
    """An option's parser from its type and limit: the check a file's value gets, in the same words.
    (`X | None` options parse as X: leaving the option out is how to say None.)"""
    words = limit.words if limit.words.startswith(("a ", "an ")) else \
        f"{'an integer' if hint is int else 'a number'} {limit.words}"  # "> 0" alone reads oddly for 'abc'

    def parse(text: str):
        try:
            value = hint(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {words}, got {text!r}") from None
        if (isinstance(value, float) and not math.isfinite(value)) or not limit.ok(value):
            raise argparse.ArgumentTypeError(f"must be {words}, got {text!r}")
        return value
    return parse


def options_of(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def flag(f: dataclasses.Field) -> str:
    return "--" + f.name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per `option` field of `cls`; each defaults to None (not given), so a value in a
    file, then the field's default, applies."""
    hints = typing.get_type_hints(cls)
    for f in options_of(cls):
        hint = _bare(hints[f.name])
        shown = "" if f.default in (None, dataclasses.MISSING) else f" (default: {f.default})"
        kwargs: dict = {"help": f.metadata["help"] + shown, "default": None}
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is typing.Literal:
            kwargs["choices"] = list(typing.get_args(hint))
        elif f.metadata["cli_type"] is None and f.metadata.get("limit") is not None:
            kwargs["type"] = _within(hint, f.metadata["limit"])
        else:
            kwargs["type"] = f.metadata["cli_type"] or hint
        parser.add_argument(flag(f), **kwargs)


def given(args: argparse.Namespace, cls: type) -> dict:
    """{field: value} of the options the command line gave."""
    return {f.name: getattr(args, f.name) for f in options_of(cls) if getattr(args, f.name, None) is not None}


def _bare(hint):
    """X for `X | None`."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(hint) if a is not type(None)]
        return arms[0] if len(arms) == 1 else hint
    return hint


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
    except FieldError as e:  # __post_init__'s checks of one field
        raise ConfigError(f"{prefix}.{e.key}: {e.reason}") from None
    except (TypeError, ValueError) as e:  # a check across fields
        raise ConfigError(f"{prefix}: {e}") from None


def _expected(hint) -> str:
    """A type hint in words: `bool`, `one of 'auto'`."""
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    return getattr(hint, "__name__", str(hint))


def coerce(value, hint, key: str):
    """Check (and gently convert: int->float, list->tuple) a YAML value against a type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
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
