"""Which trial starts next, and whether one starts at all: Optuna's study behind Tune's
ConcurrencyLimiter, stopped once the budget (search.budget) says a new trial would be wasted."""
from __future__ import annotations

import statistics
import time

import optuna
from ray.tune.search import ConcurrencyLimiter, Searcher, SearchGenerator

from search.budget import Budget
from search.context import current
from search.plan import Plan
from search.searcher import StudySearch
from search.space import SearchSpace
from search.warmstart import unseen_points


class BudgetLimiter(ConcurrencyLimiter):
    """A ConcurrencyLimiter that, under a time budget, stops suggesting once the plan's window
    for new trials (counted from the sweep's first epoch) has closed, or once the time left
    could not take a new trial through its start-up, the plan's first rung and one more epoch
    at the median times so far, so the budget is not spent on trials that could only be cut
    short. Start-up (worker start, imports, data, the precision measurement) is the time from
    suggestion to first result less that epoch. The first wave (max_concurrent trials) always
    starts: the resources are there.

    The budget is the sweep's (search.budget); a restored limiter, unpickled with the
    experiment, takes the running sweep's fresh budget and plan from search.context.
    `starts_no_more` tells the scheduler (DistributeWithinNode) when the trials that run are
    all there will be."""

    def __init__(self, searcher: Searcher, max_concurrent: int, budget: Budget | None = None,
                 plan: Plan | None = None, num_samples: int | None = None):
        super().__init__(searcher, max_concurrent)
        self.budget, self.plan, self.num_samples = budget, plan, num_samples
        self.epoch_seconds: list[float] = []
        self.startup_seconds: list[float] = []
        self.started = 0  # trials suggested so far
        self._suggested_at: dict[str, float] = {}
        self._told = False
        self.ended: set[str] = set()  # trials completed through this limiter (saved with it)

    @property
    def starts_no_more(self) -> bool:
        """True once no new trial will start: the budget said so, or every trial asked for started."""
        return self._told or (self.num_samples is not None and self.started >= self.num_samples)

    def _no_room(self) -> str | None:
        """Why no new trial may start now, or None (the first wave always starts)."""
        if self.budget is None or self.started < self.max_concurrent:
            return None
        epoch = statistics.median(self.epoch_seconds) if self.epoch_seconds else None
        return self.budget.why_no_new_trial(self.plan, epoch, statistics.median(self.startup_seconds or [0.0]))

    def suggest(self, trial_id: str):
        if (why := self._no_room()) is not None:
            if not self._told:
                current().say(why)
                self._told = True
            return Searcher.FINISHED
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            self._suggested_at[trial_id] = self.budget.clock() if self.budget else time.time()
            self.started += 1
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        seconds = result.get("epoch_wall_s", result.get("time_this_iter_s"))
        if seconds is not None:
            self.epoch_seconds.append(seconds)
            if self.budget is not None:
                self.budget.epoch_reported()
            if trial_id in self._suggested_at:  # the trial's first result
                now = self.budget.clock() if self.budget else time.time()
                self.startup_seconds.append(max(0.0, now - self._suggested_at.pop(trial_id) - seconds))
        if trial_id not in self.live_trials | self.ended:  # resumed, unknown to this limiter's saved state
            self.live_trials.add(trial_id)  # it runs: it counts, and its end reaches the searcher (StudySearch.adopt)
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.ended.add(trial_id)
        super().on_trial_complete(trial_id, result, error)

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.budget = current().budget or self.budget  # a resumed sweep starts a fresh budget
        self.plan = current().plan or self.plan
        self._suggested_at, self._told = {}, False
        if (restored := current().restored_trials) is not None:  # what Tune restored is what runs (SweepGenerator)
            self.live_trials = {t for t in self.live_trials if t in restored}
            self.started = len(restored)


class SweepGenerator(SearchGenerator):
    """Tune's SearchGenerator (it asks the searcher for trials until num_samples are made), whose
    count of trials made is, on a resume, the count in the experiment state Tune restored
    (search.context's restored_trials). On s3:// Tune uploads that state and the generator's one
    file at a time: a driver killed between the two leaves the count ahead (a trial made after
    the state's last upload, lost: the resumed sweep would end a trial short, its study trial
    marked failed) or behind (a trial too many)."""

    def set_state(self, state: dict) -> None:
        if (restored := current().restored_trials) is not None and "counter" in state:
            state = {**state, "counter": len(restored)}
        super().set_state(state)


def make_searcher(space: SearchSpace, seed: int, storage=None, study_name: str = "optuna",
                  trials_path: str = "", imported: list | None = None, budget: Budget | None = None,
                  plan: Plan | None = None) -> BudgetLimiter:
    """Seeded TPE (or random) through StudySearch, writing the study to `storage` (None: memory).
    The space's warm_start points go first, but for those an imported trial has measured."""
    s = space.settings
    sampler = (optuna.samplers.RandomSampler(seed=seed) if s.searcher == "random" else
               optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, (s.trials or 16) // 3)),
                                          multivariate=True, group=True))
    points = unseen_points(space.warm_start_points(), imported or [])
    searcher = StudySearch(space, sampler=sampler, points=points, storage=storage, study_name=study_name,
                           trials_path=trials_path)
    return BudgetLimiter(searcher, s.max_concurrent, budget, plan, s.trials)
