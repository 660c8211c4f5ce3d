"""Run configs: a YAML file with `model` (a registry name plus its family's fields),
`train` (TrainConfig's fields) and optionally `data`, overridden by `key=value` pairs.

Every key is checked against its dataclass, so a typo is an error naming its path
(`train.lr`), never a silently ignored setting.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from fer.errors import ConfigError
from fer.fields import FieldError, Limit, check_limits, limited, make_config, option
from fer.models import list_models, resolve

TOP_KEYS = ("model", "train", "data")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: PyYAML follows YAML 1.1, where a float needs a
    dot, so `1e-4` and `3E-3` would be strings and `lr: 1e-4` a type error."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def read_yaml(text) -> object:
    """YAML text (or an open file) as Python values, numbers read as YAML 1.2 reads them."""
    return yaml.load(text, Loader=_Loader)  # safe: _Loader is a SafeLoader


POSITIVE_INT = Limit("a positive integer", lambda v: v >= 1)


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained and evaluated; the fields are the YAML `train:` keys, those declared
    with `option` are `fer train` flags too (--lr for lr), which override the config file. Each
    range is stated once, as the field's limit (fer.fields)."""

    epochs: int = option("epochs at most (early stopping and the time budget may end it sooner)", 30,
                         limit=POSITIVE_INT)
    batch_size: int = option("training batch size", 128, limit=POSITIVE_INT)
    optimizer: Literal["adam", "adamw", "sgd"] = option("the optimiser", "adam")
    lr: float = option("peak learning rate", 1e-3, limit=Limit("> 0", lambda v: v > 0))
    momentum: float = limited(0.9, "in [0, 1)", lambda v: 0 <= v < 1)
    nesterov: bool = True  # sgd only
    weight_decay: float = limited(0.0, ">= 0", lambda v: v >= 0)
    schedule: Literal["none", "cosine", "onecycle", "plateau", "step"] = option(
        "learning-rate schedule (cosine and onecycle anneal over the epochs or the time budget, whichever ends "
        "first)", "none")
    step_size: int = limited(10, ">= 1", lambda v: v >= 1)  # step schedule: epochs between decays
    gamma: float = limited(0.1, "in (0, 1)", lambda v: 0 < v < 1)  # step and plateau decay factor
    plateau_patience: int = limited(3, ">= 0", lambda v: v >= 0)
    label_smoothing: float = limited(0.0, "in [0, 1)", lambda v: 0 <= v < 1)
    # > 0: an exponential moving average of the weights, this decay per step (fer.average), scored beside
    # them at every validation; the better of the two is the epoch's checkpoint. 0: off.
    ema: float = limited(0.0, "in [0, 1) (0: off)", lambda v: 0 <= v < 1)
    # > 0: the weight of a teacher's softened probabilities beside the labels in the loss (fer.ship.distill
    # supplies them; a run given none is refused), at this temperature. 0: off.
    distill: float = limited(0.0, "in [0, 1] (0: off)", lambda v: 0 <= v <= 1)
    distill_temperature: float = limited(2.0, "> 0", lambda v: v > 0)
    class_balance: Literal["none", "loss", "sampler"] = "none"
    # tau of the post-hoc prior correction (fer.calibration.prior_factor)
    logit_adjust: float = limited(0.0, ">= 0", lambda v: v >= 0)
    # > 0: every validation picks the largest tau that costs at most this much accuracy (0.01 = 1 point),
    # overriding logit_adjust; the chosen tau is saved with the weights it was chosen for.
    balance_within: float = limited(0.0, "in [0, 1)", lambda v: 0 <= v < 1)
    crop_size: int = 48  # training crops of this side; evaluation takes the centre crop
    crop_pad: int = limited(0, ">= 0", lambda v: v >= 0)  # zero padding before the random crop
    flip: bool = False
    rotation: float = limited(0.0, "in [0, 180] degrees", lambda v: 0 <= v <= 180)  # uniform in [-r, r]
    scale: float = limited(0.0, "in [0, 1)", lambda v: 0 <= v < 1)  # relative zoom jitter
    translate: float = limited(0.0, "in [0, 0.5)", lambda v: 0 <= v < 0.5)  # shift as a fraction of the side
    erasing: float = limited(0.0, "a probability in [0, 1]", lambda v: 0 <= v <= 1)  # one random rectangle
    # > 0: mixup (Zhang et al. 2018), each batch blended with a shuffled copy of itself at a share drawn
    # from Beta(mixup, mixup), its loss blended alike (fer.transforms.mixup). 0: off.
    mixup: float = limited(0.0, ">= 0 (0: off)", lambda v: v >= 0)
    tta: Literal["none", "flip", "tencrop", "shifts"] = "none"
    # fit a temperature on the validation split at every validation, kept with each checkpoint (fer.calibration)
    calibrate: bool = True
    early_stopping: int = limited(0, ">= 0 (0: off)", lambda v: v >= 0)  # patience in epochs
    monitor: Literal["val_acc", "val_macro_f1"] = "val_acc"
    time_budget_s: float = option(
        "seconds of training: no epoch starts that would end past it, and cosine anneals over whichever ends "
        "first, the epochs or this budget (0: none)", 0.0, limit=Limit(">= 0 (0: off)", lambda v: v >= 0))
    seed: int = option("seed of the weights, the batches, the augmentation and the validation holdout", 0,
                       limit=Limit("in [0, 2**32) (numpy and scikit-learn take no other)", lambda v: 0 <= v < 2**32))
    val_fraction: float = limited(0.1, "in (0, 1)", lambda v: 0 < v < 1)  # holdout without a PublicTest split
    # also predict_proba's default; BENCHMARKS.md, "Validation batch size"
    eval_batch_size: int = limited(256, ">= 1", lambda v: v >= 1)
    # auto: measured, the faster layout for this model here (fer.speed); true or false forces it.
    channels_last: bool | Literal["auto"] = "auto"
    # A checkpoint's train_config records the precision it ran at, never "auto".
    precision: Literal["auto", "fp32", "bf16"] = option(
        "bf16 autocast (fp32 weights and optimiser) or fp32; auto: the faster for this model on this device, "
        "measured on a few timed steps and cached (fer.speed; bf16 is 2-3x faster where the CPU has it natively, "
        "10x slower where it is emulated); on CUDA, bf16 if supported", "auto")
    device: str = "auto"  # auto, cpu, cuda, cuda:N

    def __post_init__(self):
        check_limits(self)
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise FieldError("device", f"must be auto, cpu, mps, cuda or cuda:N, got {self.device!r}")
        if not 8 <= self.crop_size <= 48 + 2 * self.crop_pad:
            raise FieldError("crop_size", f"must be in 8..{48 + 2 * self.crop_pad} (48 + 2 x crop_pad), "
                             f"got {self.crop_size}")
        if self.tta == "tencrop" and self.crop_size >= 48:
            raise FieldError("tta", "tencrop needs crop_size < 48")


def parse_overrides(pairs: list[str]) -> dict:
    """['train.lr=0.01', 'model.channels=[32,64]'] -> nested dict, values read as YAML."""
    out: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {pair!r}: expected KEY=VALUE, e.g. train.lr=0.01")
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = read_yaml(raw)
    return out


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _yaml_problem(e: yaml.YAMLError) -> str:
    """`line 3, column 6: invalid YAML: expected ',' or '}', but got ':' (while parsing a flow
    mapping from line 2)`: where the parser stopped, in one line (its own text takes six)."""
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    if mark is None or not problem:
        return f"invalid YAML ({str(e).splitlines()[0]})"
    context, since = getattr(e, "context", None), getattr(e, "context_mark", None)
    opened = f" ({context} from line {since.line + 1})" if context and since is not None else ""
    return f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {problem}{opened}"


def load_yaml(path: str | Path) -> dict:
    try:
        with open(path) as f:
            doc = read_yaml(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it as a YAML config ({e.__class__.__name__})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {_yaml_problem(e)}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return doc


def resolve_run(doc: dict, source: str = "config") -> dict:
    """Validate a run config; returns {"model": {"name", **fields}, "train": {...}, "data": ...}
    with every default filled in, ready to save with the run and inside its checkpoint."""
    for key in doc:
        if key not in TOP_KEYS:
            raise ConfigError(f"{source}: {key}: unknown key (known: {', '.join(TOP_KEYS)})")
    model = doc.get("model")
    if isinstance(model, str):
        model = {"name": model}
    if not isinstance(model, dict) or "name" not in model:
        given = f"model's keys: {', '.join(map(str, model))}; " if isinstance(model, dict) and model else ""
        raise ConfigError(f"{source}: model.name: missing ({given}e.g. model: {{name: seed_cnn}})")
    fields = {k: v for k, v in model.items() if k != "name"}
    family, model_cfg = resolve(model["name"], **fields)
    train = make_config(TrainConfig, doc.get("train") or {}, "train")
    _check_compatible(family, model_cfg, train)
    return {"model": {"name": family, **plain(model_cfg)}, "train": plain(train), "data": doc.get("data")}


def load_run(path: str | None, overrides: list[str] = ()) -> dict:
    doc = merge(load_yaml(path) if path else {}, parse_overrides(list(overrides)))
    if path is None and "model" not in doc:  # a first `fer train` with nothing to train: both ways to name one
        raise ConfigError("no model to train: give --config FILE (configs/runs/ holds the course report's two) or "
                          f"model.name=NAME (one of {', '.join(list_models(searchable_only=True))})")
    return resolve_run(doc, source=str(path or "overrides"))


def train_config(run: dict) -> TrainConfig:
    return make_config(TrainConfig, run["train"], "train")


def _check_compatible(family: str, model_cfg, train: TrainConfig) -> None:
    from fer.models.contract import fixed_side

    side = fixed_side(model_cfg)
    if side is not None and side != train.crop_size:
        raise ConfigError(f"model.input_size: {side} must equal train.crop_size "
                          f"{train.crop_size} for this {family} (its input side is part of the model)")


def plain(cfg) -> dict:
    """A dataclass as YAML-friendly values (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
