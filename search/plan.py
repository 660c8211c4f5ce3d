"""A sweep's schedule, derived from the budget and the epoch time measured on this machine.

The same space file must serve a 2-core AVX2 laptop (5 minutes an epoch), an AMX server (one
minute) and a GPU node (seconds). So under a time budget ASHA's rungs are in seconds of
training (`elapsed_s`, training and validation, carried across restarts), at shares of the
budget: the first at `rung_share` of it, each next one `reduction_factor` times later, and a
survivor trains to the deadline, however many epochs that is. The measured epoch time only
moves the first rung later where `grace_period` epochs would not fit before it (a rung before
a trial's second epoch ranks noise). New trials start until the second rung (a trial started
then is still judged against the others at the first), and never once one could not reach the
first rung before the deadline. Without a budget, rungs are in epochs, as Tune's ASHA has them.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, NamedTuple

from search.rungs import milestones
from search.settings import Settings

if TYPE_CHECKING:  # search.budget imports this module (its durations)
    from search.budget import Budget

TIME_ATTR = "elapsed_s"  # a trial's seconds in epochs (fer.clock.RunClock), its ASHA clock


class Plan(NamedTuple):
    """When trials start and where ASHA judges them."""

    time_attr: str  # "elapsed_s" (seconds of training) or "training_iteration" (epochs)
    rungs: tuple[float, ...]  # ASHA's milestones in time_attr units, ascending
    max_t: float  # ASHA's max_t: the budget in seconds, or max_epochs
    start_window_s: float | None  # new trials start only this long after the sweep's first epoch
    epoch_s: float | None  # measured seconds per epoch at a trial's resources
    measured: str  # what the epoch time was measured on, in words ("" if not measured)
    budget_s: float | None
    images_per_s: float | None = None  # the training rate measured with the epoch time

    @property
    def in_seconds(self) -> bool:
        return self.time_attr == TIME_ATTR

    def rung_at(self, value: float | None) -> float | None:
        """The highest rung at or below a trial's time_attr value."""
        return max((r for r in self.rungs if value is not None and r <= value), default=None)

    def rung_name(self, rung: float) -> str:
        return f"rung {duration(rung)}" if self.in_seconds else f"rung {rung:g}"

    def line(self) -> str:
        """`plan (measured 148 s/epoch for vgg_cnn at 1 CPU, ...): new trials for 18 min from the first epoch, ...`"""
        head = f"plan (measured {self.epoch_s:.3g} s/epoch for {self.measured})" if self.epoch_s else \
            "plan (no epoch time measured here)"
        if not self.in_seconds:
            return f"{head}: rungs at epochs {', '.join(f'{r:g}' for r in self.rungs)}, at most {self.max_t:g} epochs"
        rungs = ", ".join(duration(r) for r in self.rungs) if self.rungs else \
            "none (a first rung of grace_period epochs would not fit the budget)"
        n = round(self.rungs[0] / self.epoch_s) if self.epoch_s and self.rungs else 0
        epochs = f" (~{n} epoch{'s' * (n != 1)} to the first)" if n else ""
        return (f"{head}: new trials for {duration(self.start_window_s)} from the first epoch, rungs at {rungs} of "
                f"training{epochs}, survivors to the deadline ({duration(self.budget_s)})")


def duration(seconds: float) -> str:
    """`45 s`, `6 min`, `2.5 min`, `1.5 h`: as a person reads a schedule."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f}".removesuffix(".0") + " min"
    return f"{seconds / 3600:.1f}".removesuffix(".0") + " h"


def make_plan(s: Settings, budget: Budget, epoch_s: float | None = None, measured: str = "",
              startup_s: float = 0.0, images_per_s: float | None = None) -> Plan:
    """The plan for settings `s` under the sweep's `budget` (search.budget; its seconds, None
    without a time budget); `epoch_s` measured at a trial's resources, `startup_s` the time a
    trial takes to start (worker, data) before its first epoch."""
    budget_s = budget.seconds
    if not budget_s or s.scheduler != "asha":
        max_t = s.max_epochs or s.epochs_cap(budget_s)
        window = budget_s * s.explore_share if budget_s and s.explore_share else budget_s
        return Plan("training_iteration", tuple(milestones(s.grace_period, max_t, s.reduction_factor)), max_t,
                    window, epoch_s, measured, budget_s, images_per_s)
    first = max(budget_s * s.rung_share, s.grace_period * epoch_s if epoch_s else 0.0)
    rungs = tuple(r for r in milestones(first, budget_s, s.reduction_factor) if r < budget_s) if first < budget_s \
        else ()
    if s.explore_share:
        window = budget_s * s.explore_share
    else:
        reach = budget_s - startup_s - (rungs[0] if rungs else 0.0) - (epoch_s or 0.0)
        window = max(0.0, min(rungs[1] if len(rungs) > 1 else reach, reach))
    return Plan(TIME_ATTR, rungs, budget_s, window, epoch_s, measured, budget_s, images_per_s)


def calibration_config(space) -> dict:
    """The run config a sweep's first trial gets: its first warm_start point over the space's
    first point (the point the searcher suggests first), as {model, train}."""
    from search.space import flatten, unflatten

    values = dict(space.first_point())
    if space.settings.warm_start:
        values.update(flatten(space.settings.warm_start[0]))
    return unflatten(space.completed(values))


def measure_epoch(space, faces) -> tuple[float, str, float] | None:
    """Seconds per epoch of the sweep's first trial config at a trial's CPUs, on this machine: the
    training rate fer.speed measures for it (so the trials find it cached), times the training
    set, plus validation at a third of a training step's cost per view. None for GPU trials on a
    driver without a GPU (a cluster's CPU head): their plan waits for the trials' own epochs."""
    import torch

    from fer.config import resolve_run, train_config
    from fer.data import split_for_training
    from fer.models import model_from_spec
    from fer.train import pick_device, training_speed

    s = space.settings
    if s.gpus_per_trial and not torch.cuda.is_available():
        return None
    config = calibration_config(space)
    run = resolve_run(config, source=f"{space.source}: first trial")
    cfg = train_config(run)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(s.cpus_per_trial)))
    try:
        t0 = time.perf_counter()
        train, val, _ = split_for_training(faces, run["train"])
        speed = training_speed(model_from_spec(run["model"]).to(pick_device(cfg.device)), cfg, len(train))
        took = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    if not speed.images_per_s:  # a precision and layout the space gives: nothing was timed
        return None
    views = {"none": 1, "flip": 2, "shifts": 10, "tencrop": 10}[cfg.tta]  # fer.transforms.eval_views
    epoch_s = len(train) / speed.images_per_s + len(val) * views / (3 * speed.images_per_s)
    unit = f"{s.gpus_per_trial:g} GPU" if s.gpus_per_trial else f"{s.cpus_per_trial:g} CPU"
    return epoch_s, (f"{config['model']['name']} at {unit}, {speed.label} {speed.images_per_s:.0f} images/s, "
                     f"measured in {took:.0f} s"), speed.images_per_s
