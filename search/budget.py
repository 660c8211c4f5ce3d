"""A sweep's time budget: the one deadline, and what the sweep's resources did with it.

Every part that needs the deadline asks this object: the searcher's limiter (no trial starts
that could not reach its first rung), Tune's own `time_budget_s` (the time left when `fit`
starts), each trial's own time budget (its cosine schedule anneals to the deadline), and the
words for how a trial ended. The deadline is wall-clock epoch seconds (`time.time()`), the one
clock that the driver and the trials on every node of a cluster share.

The use of the budget is measured, not assumed: resource-seconds spent in trials' epochs
(training and validation), held by trials but not in an epoch (worker start, data, the
precision measurement, checkpoints, restarts with more CPUs), and idle, over the resources
times the budget: `budget: 2 CPUs x 3600 s, 97% spent training, 2% starting trials, 1% idle`.
"""
from __future__ import annotations

import time
from typing import NamedTuple

from ray.tune import Callback

from search.context import current
from search.plan import duration


class BudgetUse(NamedTuple):
    """Resource-seconds of a sweep: `total` = resources x seconds, split three ways."""

    resources: float  # CPUs (or GPUs, for GPU trials) the sweep could use
    unit: str  # "CPU" or "GPU"
    seconds: float  # the budget, or the wall time of a sweep without one
    training: float
    starting: float
    ran: float | None = None  # the wall time of a sweep done before its deadline (every trial ended)

    @property
    def total(self) -> float:
        return self.resources * self.seconds

    @property
    def unused(self) -> float:
        """Resource-seconds after a sweep that was done early: given back, not idle."""
        return self.resources * (self.seconds - self.ran) if self.ran is not None else 0.0

    @property
    def idle(self) -> float:
        return max(self.total - self.unused - self.training - self.starting, 0.0)

    def share(self, part: float) -> float:
        return part / self.total if self.total > 0 else 0.0

    def line(self) -> str:
        early = f", {self.share(self.unused):.0%} unused (done after {self.ran:.0f} s)" if self.ran is not None else ""
        return (f"budget: {self.resources:g} {self.unit}{'s' * (self.resources != 1)} x {self.seconds:.0f} s, "
                f"{self.share(self.training):.0%} spent training, {self.share(self.starting):.0%} starting trials, "
                f"{self.share(self.idle):.0%} idle{early}")


class Budget:
    """The deadline of one sweep (None without a time budget) and the meter of its use."""

    def __init__(self, seconds: float | None, resources: float = 1.0, unit: str = "CPU", clock=time.time):
        self.seconds, self.resources, self.unit, self.clock = seconds, resources, unit, clock
        self.restart()

    def restart(self) -> None:
        """A fresh budget from now (a resumed sweep gets one, as Tune's own time_budget_s does)."""
        self.start = self.clock()
        self.deadline = self.start + self.seconds if self.seconds else None
        self.training = self.held = 0.0
        self.first_epoch = None  # clock time of the sweep's first reported epoch (epoch_reported)
        self.ended = None  # clock time the sweep finished (finish)

    def epoch_reported(self) -> None:
        """A trial reported an epoch: the first one starts the plan's window for new trials."""
        if self.first_epoch is None:
            self.first_epoch = self.clock()

    def since_first_epoch(self) -> float:
        """Seconds since the sweep's first epoch (0 before it). The plan's window for new trials
        counts from there, as its rungs count a trial's training, so a slow start (workers, data,
        a busy node) does not close the window before any trial has been judged."""
        return self.clock() - self.first_epoch if self.first_epoch is not None else 0.0

    def left(self) -> float:
        """Seconds to the deadline (inf without a budget)."""
        return max(self.deadline - self.clock(), 0.0) if self.deadline else float("inf")

    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else self.clock()) - self.start

    def over(self) -> bool:
        """Whether the deadline has come (within the second Tune's own budget check may lag)."""
        return self.deadline is not None and self.clock() >= self.deadline - 1

    def finish(self) -> None:
        """The sweep has ended (every trial done, or the deadline come)."""
        self.ended = self.clock()

    def use(self) -> BudgetUse:
        """The use so far of the whole budget. A sweep finished more than a second before its
        deadline also gives its wall time: what it left unused was given back, not idle."""
        seconds = self.seconds or self.elapsed()
        held = min(self.held, self.resources * seconds)
        training = min(self.training, held)
        ran = self.ended - self.start if self.ended is not None else None
        early = ran if self.seconds and ran is not None and ran < self.seconds - 1 else None
        return BudgetUse(self.resources, self.unit, seconds, training, held - training, early)

    def use_so_far(self) -> BudgetUse:
        """The use over the time elapsed, not the whole budget: what a status line shows mid-sweep."""
        return self.use()._replace(seconds=max(self.elapsed(), 1e-9), ran=None)

    def why_no_new_trial(self, plan, epoch_s: float | None, startup_s: float) -> str | None:
        """Why a trial suggested now would be wasted, or None: the plan's window for new trials has
        closed, or the time left cannot take it through its start-up, the first rung and one more
        epoch (at the median times measured so far)."""
        if not self.deadline or plan is None:
            return None
        if plan.start_window_s is not None and self.since_first_epoch() > plan.start_window_s:
            return (f"budget: the window for new trials ({duration(plan.start_window_s)} from the first epoch) has "
                    "closed: no new trials start; running trials take up the CPUs that free up")
        if not epoch_s:
            return None
        first = plan.rungs[0] if plan.rungs else 0.0
        need = startup_s + epoch_s + (first if plan.in_seconds else first * epoch_s)
        if need > self.left():
            return (f"budget: {self.left():.0f}s left, less than a new trial's start-up ({startup_s:.0f}s), first rung "
                    f"and one epoch ({epoch_s:.0f}s): no new trials start")
        return None


def trial_seconds(own: float | None, deadline: float, used_s: float = 0.0, clock=time.time) -> float:
    """A trial's training seconds under the sweep's deadline (wall-clock, shared by every node),
    set when it starts: what it has used already (a resumed trial) plus what is left of the
    sweep, so its cosine schedule anneals to zero by the deadline; never more than its own time
    budget, and at least 1 s left (one that starts at the deadline still has a budget)."""
    return trial_seconds_now(own, max(deadline, clock() + 1.0), used_s, clock)


def trial_seconds_now(own: float | None, deadline: float, used_s: float, clock=time.time) -> float:
    """A running trial's budget at this moment, asked before each next epoch (RunClock.refresh):
    what it has used plus what is left of the sweep, nothing once the deadline has passed, never
    more than its own budget. The run's clock counts epochs only; the deadline also counts the
    checkpoints and reports between them and the trial's start, so the clock alone would let a
    last epoch start that Tune then stops at the deadline, half done."""
    seconds = used_s + (deadline - clock())
    return min(own, seconds) if own else seconds


def overdue(waited_s: float, epoch_s: float, epochs: int) -> bool:
    """Whether a trial that has reported no epoch after `waited_s` is far behind a plan of
    `epoch_s` per epoch: a minute for its start-up, then `epochs` epochs (the watchdog's patience)."""
    return waited_s > 60 + epochs * epoch_s


def trial_resources(trial, unit: str) -> float:
    """What a Tune trial holds now, in the sweep's unit (it grows when freed CPUs go to it)."""
    return trial.placement_group_factory.required_resources.get(unit, 0.0)


class BudgetMeter(Callback):
    """Feeds the running sweep's Budget from Tune's loop: at each step, the resources of the trials
    running or starting, for the time since the last step (held); at each result, the trial's epoch
    (training and validation) times its resources (training). The Budget is read from
    search.context: Tune pickles its callbacks with the experiment, and a restored one would
    otherwise hold a stale copy."""

    def __init__(self):
        self.last = None

    def on_step_end(self, iteration, trials, **info):
        budget = current().budget
        if budget is None:
            return
        now = budget.clock()
        last = max(self.last or now, budget.start)
        self.last = now
        if budget.deadline is not None:
            now = min(now, budget.deadline)
        if now > last:  # a PENDING trial holds its resources while its worker starts (or waits for them: capped)
            held = sum(trial_resources(t, budget.unit) for t in trials if t.status in ("RUNNING", "PENDING"))
            budget.held += (now - last) * min(held, budget.resources)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        budget = current().budget
        if budget is None:
            return
        budget.training += result.get("epoch_wall_s", 0.0) * trial_resources(trial, budget.unit)
