"""Search spaces as data: the YAML format, its validation, and the one converter.

A space file describes one sweep (or several under `sweeps:`):

    family: cnn                      # which model family the trials build
    settings: {metric: val_acc, num_samples: 24, max_epochs: 30, grace_period: 4, ...}
    model:  {name: cnn, channels: {choice: [[32, 64], [64, 128]]}, dropout: 0.2}
    train:  {lr: {loguniform: [1.0e-4, 1.0e-1]},
             momentum: {uniform: [0.8, 0.95], when: {optimizer: sgd}}}

Each model/train value is fixed, or one distribution: choice, uniform, loguniform,
int, logint; `when` makes it conditional on keys of the same section. `SearchSpace`
turns a validated file into Optuna's define-by-run function (used by OptunaSearch),
Optuna distributions (for importance analysis of finished sweeps) and
warm-start points.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any

from fer.config import TrainConfig, resolve_run
from fer.errors import ConfigError
from fer.fields import make_config
from fer.models import spec_params
from fer.models.registry import family_config, family_names
from search.settings import Settings
from search.uri import check_name

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int", "logint")
SECTIONS = ("model", "train")


@dataclass(frozen=True)
class Param:
    key: str  # "model/channels"
    kind: str  # choice, uniform, loguniform, int, logint
    args: tuple
    when: tuple[tuple[str, tuple], ...] = ()  # ((key, allowed values), ...)


class SearchSpace:
    """A validated space of one family: fixed values, parameters, settings."""

    def __init__(self, doc: dict, source: str):
        self.source = source
        _check_keys(doc, {"family", "name", "settings", "model", "train", "data"}, source)
        self.family = doc.get("family") or (doc.get("model") or {}).get("name")
        if self.family not in family_names():
            raise ConfigError(f"{source}: family: expected one of {', '.join(family_names())}, got {self.family!r}")
        self.name = check_name(doc.get("name", self.family), f"{source}: name")
        self.settings = _settings(doc.get("settings") or {}, source)
        self.data = doc.get("data")
        self.fixed: dict[str, Any] = {}
        self.params: list[Param] = []
        for section in SECTIONS:
            body = doc.get(section) or {}
            if not isinstance(body, dict):
                raise ConfigError(f"{source}: {section}: expected a mapping")
            for key, value in body.items():
                self._add(section, key, value)
        self.fixed.setdefault("model/name", self.family)
        if "train/epochs" in self.fixed or any(p.key == "train/epochs" for p in self.params):
            raise ConfigError(f"{source}: train.epochs: set settings.max_epochs instead (every trial's schedule "
                              "spans max_epochs; the scheduler may stop it earlier)")
        self.fixed["train/epochs"] = self.settings.epochs_cap()
        if self.fixed.get("train/monitor", self.settings.metric) != self.settings.metric:
            raise ConfigError(f"{source}: train.monitor: must equal settings.metric ({self.settings.metric}) "
                              "or be left out")
        self.fixed["train/monitor"] = self.settings.metric  # each trial's best epoch is the sweep's metric's
        if self.settings.metric == "val_macro_f1":
            # macro-F1 sweeps are for class balance: unless the space says otherwise, each validation
            # corrects for the class prior as far as 1 point of accuracy allows (fer.calibration.balancing_tau)
            self.fixed.setdefault("train/balance_within", 0.01)
        self._check_when()
        self._check_values()
        self.warm_start_points()  # a bad warm-start point fails now, not mid-sweep

    # -- construction -------------------------------------------------------------------
    def _add(self, section: str, key: str, value: Any) -> None:
        path = f"{section}.{key}"
        allowed = _section_fields(section, self.family)
        if key not in allowed:
            raise ConfigError(f"{self.source}: {path}: unknown key (known: {', '.join(sorted(allowed))})")
        if isinstance(value, dict) and set(value) & set(DISTRIBUTIONS):
            self.params.append(_param(section, key, value, self.source))
        elif isinstance(value, dict) and key != "name":
            raise ConfigError(f"{self.source}: {path}: expected a value or one of {{{', '.join(DISTRIBUTIONS)}: ...}}")
        else:
            self.fixed[f"{section}/{key}"] = value

    def _check_when(self) -> None:
        """Every `when:` names a key of the space, with values that key can take."""
        for p in self.params:
            for key, allowed in p.when:
                path = f"{self.source}: {p.key.replace('/', '.')}.when.{key.split('/', 1)[1]}"
                target = next((q for q in self.params if q.key == key), None)
                if target is None and key not in self.fixed:
                    section = key.split("/")[0]
                    known = ", ".join(q.key.split("/", 1)[1] for q in self.params if q.key.startswith(f"{section}/"))
                    raise ConfigError(f"{path}: not a parameter of this space (parameters: {known or 'none'})")
                possible = [_encode(c) for c in target.args] if target and target.kind == "choice" else None
                never = [v for v in allowed if possible is not None and _encode(v) not in possible]
                if never:
                    raise ConfigError(f"{path}: {never[0]!r} is never chosen (choices: "
                                      f"{', '.join(map(str, target.args))})")

    def _check_values(self) -> None:
        """Every choice and both ends of every range pass the checks fer applies to a run
        (types, allowed values), each tried in the space's first point (the others' first
        values, its own `when` met), so a bad value is an error naming its key now rather
        than a failed trial mid-sweep."""
        self._check_first_point()
        for p in self.params:
            for label, value in _labelled_values(p):
                self._validate_point(self._point_with(p, value), f"{p.key.replace('/', '.')}.{label} = {value!r}: ")

    def _check_first_point(self) -> None:
        """The first point fails only through a fixed value or some parameter's first value: name which."""
        try:
            self._validate_point(self.first_point(), "")
        except ConfigError as error:
            for p in self.params:
                for _, value in _labelled_values(p)[1:]:
                    try:
                        self._validate_point(self._point_with(p, value), "")
                    except ConfigError:
                        continue
                    first = _labelled_values(p)[0]
                    raise ConfigError(f"{self.source}: {p.key.replace('/', '.')}.{first[0]} = {first[1]!r}: "
                                      f"{str(error).removeprefix(f'{self.source}: ')}") from None
            raise

    def _point_with(self, p: Param, value) -> dict:
        need = dict(p.when)  # its conditions' keys -> allowed values
        point = self._values(lambda q: value if q is p else need[q.key][0] if q.key in need else q.args[0])
        return {**point, p.key: value}

    def _validate_point(self, flat: dict, where: str) -> None:
        try:
            resolve_run(unflatten(flat), source=self.source)
        except ConfigError as e:
            msg = str(e).removeprefix(f"{self.source}: ")
            raise ConfigError(f"{self.source}: {where}{msg}") from None

    # -- sampling -------------------------------------------------------------------------
    def define_by_run(self, trial) -> dict:
        """Optuna define-by-run: suggest every active parameter, return the whole config
        (flat "section/key" names, which Tune unflattens into {model: ..., train: ...})."""
        return self._apply_budget(self._values(lambda p: _suggest(trial, p)))

    def completed(self, values: dict) -> dict:
        """Flat values with the parameter budget applied, as a trial would get them."""
        return self._apply_budget(dict(values))

    def first_point(self) -> dict:
        """Each parameter's first choice or lower bound: the point validated at load time."""
        return self._values(lambda p: p.args[0])

    def _values(self, pick) -> dict:
        values = dict(self.fixed)
        for p in self._ordered():
            if all(values.get(k) in allowed for k, allowed in p.when):
                values[p.key] = pick(p)
        return values

    def _ordered(self) -> list[Param]:
        """Unconditional parameters first, so a `when` always sees the value it tests."""
        return sorted(self.params, key=lambda p: len(p.when))

    def distributions(self) -> dict:
        """Optuna distributions of every parameter (choices of lists as JSON strings)."""
        import optuna.distributions as d

        out = {}
        for p in self.params:
            if p.kind == "choice":
                out[p.key] = d.CategoricalDistribution([_encode(c) for c in p.args])
            elif p.kind in ("int", "logint"):
                out[p.key] = d.IntDistribution(p.args[0], p.args[1], log=p.kind == "logint")
            else:
                out[p.key] = d.FloatDistribution(p.args[0], p.args[1], log=p.kind == "loguniform")
        return out

    def warm_start_points(self) -> list[dict]:
        """settings.warm_start configs as Optuna parameter values, for points_to_evaluate."""
        points = []
        for i, cfg in enumerate(self.settings.warm_start):
            flat = flatten(cfg)
            point = {}
            for p in self.params:
                if p.key in flat:
                    value = flat[p.key]
                    if p.kind == "choice" and _encode(value) not in {_encode(c) for c in p.args}:
                        raise ConfigError(f"{self.source}: settings.warm_start[{i}].{p.key.replace('/', '.')}: "
                                          f"{value!r} is not among the choices")
                    point[p.key] = _encode(value) if p.kind == "choice" else value
            points.append(point)
        return points

    # -- the parameter budget ------------------------------------------------------------
    def _apply_budget(self, values: dict) -> dict:
        """Rescale the budget's `scale` list (widths or channels) so the model's trainable
        parameters land within tolerance of the target; CNN and DNN then compare fairly."""
        budget = self.settings.param_budget
        if not budget:
            return values
        target, tol, key = budget["target"], budget.get("tolerance", 0.05), budget["scale"].replace(".", "/")
        base = list(values[key])
        count = lambda s: _trainable(values, key, [max(1, round(w * s)) for w in base])  # noqa: E731
        if abs(count(1.0) / target - 1) <= tol:
            return values
        lo, hi = 1e-3, 1e3
        for _ in range(40):  # parameters grow monotonically with the scale
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
        values[key] = [max(1, round(w * hi)) for w in base]
        return values


def _labelled_values(p: Param) -> list[tuple[str, Any]]:
    """[(label, value)]: every choice, or both ends of a range."""
    if p.kind == "choice":
        return [(f"choice[{i}]", v) for i, v in enumerate(p.args)]
    return [(f"{p.kind}[0]", p.args[0]), (f"{p.kind}[1]", p.args[1])]


def _trainable(values: dict, key: str, scaled: list) -> int:
    return spec_params(unflatten({**values, key: scaled})["model"])["trainable"]


def _suggest(trial, p: Param):
    name = p.key
    if p.kind == "choice":
        return _decode(trial.suggest_categorical(name, [_encode(c) for c in p.args]))
    if p.kind in ("int", "logint"):
        return trial.suggest_int(name, p.args[0], p.args[1], log=p.kind == "logint")
    return trial.suggest_float(name, p.args[0], p.args[1], log=p.kind == "loguniform")


def _encode(value):
    """Optuna's categorical choices must be scalars: lists travel as JSON text."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


def _decode(value):
    return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value


def _param(section: str, key: str, spec: dict, source: str) -> Param:
    path = f"{source}: {section}.{key}"
    kinds = [k for k in spec if k in DISTRIBUTIONS]
    extra = set(spec) - set(DISTRIBUTIONS) - {"when"}
    if len(kinds) != 1 or extra:
        raise ConfigError(f"{path}: expected exactly one of {', '.join(DISTRIBUTIONS)} (plus optional when), "
                          f"got {', '.join(spec)}")
    kind, args = kinds[0], spec[kinds[0]]
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{path}.choice: expected a non-empty list")
    else:
        numeric = (int,) if kind in ("int", "logint") else (int, float)
        if (not isinstance(args, list) or len(args) != 2 or not all(isinstance(a, numeric) and not isinstance(a, bool)
                                                                    for a in args) or not args[0] < args[1]):
            raise ConfigError(f"{path}.{kind}: expected [low, high] {'integers' if numeric == (int,) else 'numbers'}"
                              " with low < high")
        if kind in ("loguniform", "logint") and args[0] <= 0:
            raise ConfigError(f"{path}.{kind}: low must be > 0 on a log scale")
        args = [float(a) for a in args] if kind in ("uniform", "loguniform") else args
    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise ConfigError(f"{path}.when: expected a mapping like {{optimizer: sgd}}")
    conds = tuple((k.replace(".", "/") if "." in k else f"{section}/{k}", tuple(v if isinstance(v, list) else [v]))
                  for k, v in when.items())
    return Param(f"{section}/{key}", kind, tuple(args), conds)


def _section_fields(section: str, family: str) -> set[str]:
    if section == "train":
        return {f.name for f in fields(TrainConfig)}
    return {f.name for f in fields(family_config(family))} | {"name"}


def _settings(values: dict, source: str) -> Settings:
    return make_config(Settings, values, f"{source}: settings")


def _check_keys(doc: dict, allowed: set, source: str) -> None:
    for key in doc:
        if key not in allowed:
            raise ConfigError(f"{source}: {key}: unknown key (known: {', '.join(sorted(allowed))})")


def flatten(cfg: dict) -> dict:
    return {f"{s}/{k}": v for s in SECTIONS for k, v in (cfg.get(s) or {}).items()}


def unflatten(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        section, _, name = key.partition("/")
        out.setdefault(section, {})[name] = value
    return out


def load_sweeps(path: str, settings: dict | None = None) -> list[SearchSpace]:
    """The sweeps of a space file: one space, or several under `sweeps:` sharing
    the file's `settings:` and `data:`. `settings` (from the command line) win."""
    from fer.config import load_yaml

    doc = load_yaml(path)
    if "sweeps" not in doc:
        return [SearchSpace({**doc, "settings": {**(doc.get("settings") or {}), **(settings or {})}}, path)]
    _check_keys(doc, {"sweeps", "settings", "data"}, path)
    if not isinstance(doc["sweeps"], list) or not doc["sweeps"]:
        raise ConfigError(f"{path}: sweeps: expected a non-empty list of spaces")
    spaces = []
    for i, sub in enumerate(doc["sweeps"]):
        if not isinstance(sub, dict):
            raise ConfigError(f"{path}: sweeps[{i}]: expected a mapping")
        merged = {"data": doc.get("data"), **sub,
                  "settings": {**(doc.get("settings") or {}), **(sub.get("settings") or {}), **(settings or {})}}
        spaces.append(SearchSpace(merged, f"{path}: sweeps[{i}]"))
    return spaces
