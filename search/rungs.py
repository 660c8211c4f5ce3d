"""ASHA whose rung cutoffs also apply to trials that passed a rung before others reached it."""
from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, TrialScheduler


class RecheckedASHA(ASHAScheduler):
    """ASHA judges a trial at a rung only against the trials that reached the rung before it,
    so the first to arrive always continues, however the later ones score there. With few
    trials at a time (two racing on a 2-core machine) that lets a trial that is behind run to
    the deadline on CPUs the leader could use.

    Here every new score at a rung re-applies the rung's cutoff (the top 1/reduction_factor of
    all scores recorded there) to the running trials whose highest rung it is: one that falls
    below is stopped at its next result, and its CPUs go to the survivors (grow_trials). A
    trial that has since passed a higher rung is judged there, not here."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._outranked: set[str] = set()

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if trial.trial_id in self._outranked:
            self._outranked.discard(trial.trial_id)
            self._num_stopped += 1
            return TrialScheduler.STOP
        bracket = self._trial_info.get(trial.trial_id)
        before = _rungs_of(bracket, trial.trial_id)
        action = super().on_trial_result(tune_controller, trial, result)
        new = [r for r in _rungs_of(bracket, trial.trial_id) if r not in before]
        if new:
            self._recheck(bracket, new[0], trial.trial_id)
        return action

    def _recheck(self, bracket, milestone: float, arrived: str) -> None:
        recorded = dict(bracket._rungs)[milestone]
        cutoff = bracket.cutoff(recorded)
        higher = set().union(*(r for m, r in bracket._rungs if m > milestone))
        for trial_id, score in recorded.items():
            if (trial_id != arrived and trial_id in self._trial_info and trial_id not in higher
                    and score < cutoff):
                self._outranked.add(trial_id)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._outranked.discard(trial.trial_id)
        super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._outranked.discard(trial.trial_id)
        super().on_trial_remove(tune_controller, trial)


def _rungs_of(bracket, trial_id: str) -> list[float]:
    """The milestones (epochs) at which `trial_id` has a recorded score."""
    return [m for m, recorded in bracket._rungs if trial_id in recorded] if bracket else []
