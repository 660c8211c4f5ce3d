"""ASHA whose rung cutoffs also apply to trials that passed a rung before others reached it."""
from __future__ import annotations

import math

import numpy as np
from ray.tune.schedulers import ASHAScheduler, TrialScheduler


def milestones(grace_period: int, max_t: int, reduction_factor: float) -> list[float]:
    """ASHA's rungs (one bracket), ascending: grace_period * reduction_factor^k up to max_t."""
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return [grace_period * reduction_factor**k for k in range(count)]


class RecheckedASHA(ASHAScheduler):
    """ASHA judges a trial at a rung only against the trials that reached the rung before it,
    so the first to arrive always continues, however the later ones score there. With few
    trials at a time (two racing on a 2-core machine) that lets a trial that is behind run to
    the deadline on CPUs the leader could use.

    Here every new score at a rung re-applies the rung's cutoff (the top 1/reduction_factor of
    all scores recorded there) to the running trials whose highest rung it is: one that falls
    below is stopped at its next result, and its CPUs go to the survivors (grow_trials). A
    trial that has since passed a higher rung is judged there, not here.

    ASHA itself still decides each arrival; the rung records used for the re-checks are kept
    here, through the scheduler's public hooks, as ASHA records them (a trial's score at the
    first result at or past each milestone)."""

    def __init__(self, *, time_attr: str = "training_iteration", metric: str | None = None,
                 mode: str | None = None, max_t: int = 100, grace_period: int = 1,
                 reduction_factor: float = 4, **kwargs):
        super().__init__(time_attr=time_attr, metric=metric, mode=mode, max_t=max_t, grace_period=grace_period,
                         reduction_factor=reduction_factor, **kwargs)
        self.rung_time, self.rung_metric, self.rung_sign = time_attr, metric, -1.0 if mode == "min" else 1.0
        self.reduction = reduction_factor
        self.rungs: dict[float, dict[str, float]] = {m: {} for m in milestones(grace_period, max_t, reduction_factor)}
        self.live: set[str] = set()
        self.outranked: set[str] = set()

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        accepted = super().set_search_properties(metric, mode, **spec)
        if accepted:
            self.rung_metric = self.rung_metric or metric
            self.rung_sign = -1.0 if (mode or "max") == "min" else 1.0
        return accepted

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)
        self.live.add(trial.trial_id)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if trial.trial_id in self.outranked:
            self.outranked.discard(trial.trial_id)
            return TrialScheduler.STOP
        action = super().on_trial_result(tune_controller, trial, result)
        milestone = self._record(trial.trial_id, result)
        if milestone is not None:
            self._recheck(milestone, trial.trial_id)
        return action

    def _record(self, trial_id: str, result: dict) -> float | None:
        """The rung this result records the trial at, if any: the highest milestone reached
        that holds no score of it yet."""
        t = result.get(self.rung_time)
        if t is None or self.rung_metric not in result:
            return None
        for milestone in sorted(self.rungs, reverse=True):
            if t >= milestone and trial_id not in self.rungs[milestone]:
                self.rungs[milestone][trial_id] = self.rung_sign * result[self.rung_metric]
                return milestone
        return None

    def _recheck(self, milestone: float, arrived: str) -> None:
        recorded = self.rungs[milestone]
        cutoff = np.nanpercentile(list(recorded.values()), (1 - 1 / self.reduction) * 100)
        higher = set().union(*(r for m, r in self.rungs.items() if m > milestone))
        for trial_id, score in recorded.items():
            if trial_id != arrived and trial_id in self.live and trial_id not in higher and score < cutoff:
                self.outranked.add(trial_id)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self.live.discard(trial.trial_id)
        self.outranked.discard(trial.trial_id)
        super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self.live.discard(trial.trial_id)
        self.outranked.discard(trial.trial_id)
        super().on_trial_remove(tune_controller, trial)
