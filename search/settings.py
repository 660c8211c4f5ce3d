"""A sweep's settings: the `settings:` keys of a space file, and the `search run` options that
override them: both come from the fields below (fer.fields), so names, types, defaults and help
live here once. Types are checked by fer's `make_config`, as for run configs (a wrong key or
type names `settings.KEY`); the ranges here, so a bad budget or resource request fails before
Ray starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fer.command import non_negative_float
from fer.fields import FieldError, Limit, check_limits, option

POSITIVE_INT = Limit("a positive integer", lambda v: v >= 1)
POSITIVE = Limit("a positive number", lambda v: v > 0)

DEFAULT_EPOCHS = 10  # a trial's epochs without max_epochs or a time budget
DEFAULT_TRIALS = 8  # a sweep's trials without num_samples or a time budget
UNBOUNDED_EPOCHS = 100_000  # under a time budget without max_epochs: the budget ends every trial


def gpus_or_auto(text: str) -> float | str:
    """--gpus-per-trial: a number >= 0, or auto."""
    return "auto" if text == "auto" else non_negative_float(text)


@dataclass
class Settings:
    """Sweep settings; the fields are the YAML `settings:` keys, and those declared with `option`
    are `search run` flags too (--num-samples for num_samples), which override the file."""

    metric: Literal["val_acc", "val_macro_f1"] = option(
        "what trials are ranked and checkpoints kept by (val_macro_f1: class balance)", "val_acc")
    num_samples: int | None = option(
        "trials per sweep at most (default: as many as the time budget lets start, search.plan; else 8)",
        None, limit=POSITIVE_INT)
    max_epochs: int | None = option(
        "epochs per trial at most (default: to the deadline under a time budget, whatever an epoch costs on "
        "this machine; else 10)", None, limit=POSITIVE_INT)
    grace_period: int = option(
        "epochs before ASHA may stop a trial (under a time budget ASHA's rungs are in seconds of training, "
        "search.plan, and this is the fewest epochs before the first rung)", 2, limit=POSITIVE_INT)
    rung_share: float = option(
        "under a time budget, ASHA's first rung at this share of it (each next one reduction_factor times later)",
        0.1, limit=Limit("a number in (0, 1)", lambda v: 0 < v < 1))
    reduction_factor: int = option("ASHA's reduction factor: a rung keeps the top 1/this of its trials", 3,
                                   limit=Limit("an integer >= 2", lambda v: v >= 2))
    max_concurrent: int | None = option(
        "trials at a time at most (default: as many as the cluster holds at the trial's resources)", None,
        limit=POSITIVE_INT)
    cpus_per_trial: float = option("CPUs each trial needs (torch threads follow)", 1.0, limit=POSITIVE)
    gpus_per_trial: float | Literal["auto"] = option(
        "GPUs each trial needs; fractions pack trials (0.25 runs four per GPU); auto: trials per GPU and CPUs per "
        "trial measured on a GPU node before the sweep (fer.packing)", 0.0, cli_type=gpus_or_auto)
    time_budget_s: float | None = option(
        "wall-clock seconds per sweep; the schedule is planned from the epoch time measured here", None,
        limit=POSITIVE)
    max_failures: int = option("retries of a trial whose worker fails", 2,
                               limit=Limit("an integer >= 0", lambda v: v >= 0))
    # With 1, Tune snapshots the experiment after every checkpoint, so a retried or resumed trial finds its
    # checkpoint and its history whole; with more, it snapshots less often and loses them (benchmarks/BENCHMARKS.md,
    # "How many trials one driver handles": the snapshots are most of the driver's cost at 256 trials).
    keep_checkpoints: int = option("best epochs kept per trial (Tune also keeps the latest, for resuming)", 1,
                                   limit=POSITIVE_INT)
    searcher: Literal["tpe", "random"] = option("Optuna's sampler (random: plain random search)", "tpe")
    scheduler: Literal["asha", "fifo"] = option("fifo runs every trial to the end", "asha")
    param_budget: dict | None = None  # {target: int, tolerance: 0.05, scale: model.widths}
    warm_start: list = field(default_factory=list)  # configs ({model: {...}, train: {...}}) tried first
    explore_share: float | None = option(
        "share of the time budget in which new trials may start, from the sweep's first epoch (default: derived "
        "by search.plan from the rungs and the measured epoch time); then the trials still running take up the "
        "CPUs that free up",
        None, limit=Limit("a number in (0, 1]", lambda v: 0 < v <= 1))
    grow_trials: bool = option("CPU trials under a time budget only: Tune's ResourceChangingScheduler spreads "
                               "freed CPUs over the running trials (otherwise trials reuse workers)", True)
    recheck_rungs: bool = option(
        "ASHA only: a trial that passed a rung early is stopped once later arrivals push it out of the rung's "
        "top 1/reduction_factor (search.rungs.RecheckedASHA)", False)

    def __post_init__(self):
        check_limits(self)  # each field's limit, stated once above
        _require(self.gpus_per_trial == "auto" or self.gpus_per_trial >= 0, "gpus_per_trial", "a number >= 0 or auto",
                 self.gpus_per_trial)
        if self.scheduler == "asha" and self.max_epochs and self.grace_period > self.max_epochs:
            raise FieldError("grace_period", f"{self.grace_period} exceeds max_epochs {self.max_epochs}, "
                             "so ASHA could never stop a trial (lower it, e.g. --grace-period 1)")
        if self.param_budget is not None and not (isinstance(self.param_budget, dict)
                                                  and {"target", "scale"} <= set(self.param_budget)):
            raise FieldError("param_budget", "expected {target: N, scale: model.widths}")
        target = (self.param_budget or {}).get("target", 1)
        if isinstance(target, bool) or not isinstance(target, int) or target < 1:
            raise FieldError("param_budget", f"target: must be a positive number of parameters, got {target!r}")


    @property
    def trials(self) -> int | None:
        """Trials to run: num_samples, else unbounded (None) under a time budget, else DEFAULT_TRIALS."""
        return self.num_samples or (None if self.time_budget_s else DEFAULT_TRIALS)

    def epochs_cap(self, budget_s: float | None = None) -> int:
        """Every trial's train.epochs: max_epochs, else as many as a time budget allows."""
        return self.max_epochs or (UNBOUNDED_EPOCHS if budget_s or self.time_budget_s else DEFAULT_EPOCHS)


def _require(ok: bool, key: str, expected: str, value) -> None:
    if not ok:
        raise FieldError(key, f"must be {expected}, got {value!r}")
