"""A run's training time, owned by one object: `RunClock` (Lightning's `Timer` callback for fer).

Seconds spent in epochs (training and validation) are what a run's `time_budget_s` is measured
against, what its cosine schedule anneals over, what its progress reports and what a sweep's
ASHA rungs count (`elapsed_s` in each epoch's metrics). A resumed run carries them on through
the clock's state, kept in its checkpoint's history, instead of starting from zero. Wall-clock
deadlines shared by a sweep's trials are search.budget's, not this clock's.
"""
from __future__ import annotations

import time


class RunClock:
    """Seconds in epochs so far and into the running one, against an optional budget."""

    def __init__(self, budget_s: float | None = None, clock=time.perf_counter):
        self.budget_s, self.clock = budget_s or None, clock
        self.elapsed = 0.0  # seconds of finished epochs
        self.epoch_start = clock()
        # (seconds used) -> the budget now, asked before each "does another epoch fit": a run under
        # a wall-clock deadline (a sweep's trial) has its checkpoints, reports and start-up outside
        # its epochs, which the deadline counts and this clock does not
        self.refresh = None

    def start_epoch(self) -> None:
        self.epoch_start = self.clock()

    def in_epoch(self) -> float:
        """Seconds into the running epoch."""
        return self.clock() - self.epoch_start

    def end_epoch(self) -> float:
        """Close the running epoch; its seconds."""
        last = self.in_epoch()
        self.elapsed += last
        return last

    def used(self) -> float:
        """Seconds of training so far, the running epoch's included."""
        return self.elapsed + self.in_epoch()

    def share(self) -> float:
        """Share of the budget used (0 without one)."""
        return self.used() / self.budget_s if self.budget_s else 0.0

    def another_fits(self, last_epoch_s: float) -> bool:
        """Whether an epoch as long as the last one still ends within the budget."""
        if not self.budget_s:
            return True
        if self.refresh is not None:
            self.budget_s = max(self.refresh(self.elapsed), 1e-9)  # (a budget stays positive: 0 means none)
        return self.elapsed + last_epoch_s <= self.budget_s

    def state_dict(self) -> dict:
        return {"elapsed_s": self.elapsed}

    def load_state_dict(self, state: dict) -> None:
        self.elapsed = float(state.get("elapsed_s", 0.0))
