"""What a sweep's callbacks bring back to the command that runs it, on one object.

Tune pickles its callbacks and searcher with the experiment, and a restored experiment runs the
unpickled copies, not the objects the command built; so they report here, to this process's one
`EVENTS`, which search.engine resets before each command. Nothing else about a sweep is
process-wide. The one thing a reset keeps is the study passwords this process was given: a
restored study storage finds its password here, and nowhere in the files Tune pickles.
"""
from __future__ import annotations


class SweepEvents:
    def __init__(self):
        self.passwords: dict[str, str] = {}  # study URL without password -> its password (search.study)
        self.reset()

    def reset(self) -> None:
        self.endings: dict[str, str] = {}  # trial_id -> how it ended, as printed
        self.signals: list[int] = []  # SIGINT / SIGTERM received during a sweep
        self.tune_stop = None  # Tune's graceful stop of the running fit (its SIGINT handler)
        self.storage_failure: str | None = None  # why the storage failed, once it has
        self.budget = None  # the running sweep's search.budget.Budget
        self.plan = None  # the running sweep's search.plan.Plan

    def start_sweep(self, budget, plan) -> None:
        """A sweep of the command starts: its budget and plan replace the last sweep's."""
        self.budget, self.plan = budget, plan


EVENTS = SweepEvents()
