"""What one running experiment knows about itself, on one object: `SweepContext`.

search.engine builds a context per `run_experiment` and runs every sweep inside
`with context.active():`. Tune pickles its callbacks and searcher with the experiment, and a
resumed experiment runs the unpickled copies, not the objects the command built; so those hold
no budget, plan or endings of their own: they ask `current()` for the experiment they run in.
The context lives in a `contextvars.ContextVar` (the one module-level object here, and not
mutable state: what it holds is scoped to the `with` block of the thread that runs the sweep,
where Tune calls callbacks and the searcher), so two experiments in one process (tests, a
notebook) never see each other's; SignalWatch takes the context when the fit starts, for the
signal handlers. A study's password is never kept here: a resumed study connects as its driver
does (PGPASSWORD, ~/.pgpass).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar


class SweepContext:
    """The running experiment: its sweep's budget and plan, how its trials ended, the signals it
    received, Tune's graceful stop of the running fit, why its storage failed, and `say`, the
    one way the engine and the sweeps speak (the command that runs them chooses where to)."""

    def __init__(self, say: Callable[[str], None] | None = None):
        self.say = say or _print  # where the experiment's own lines go: the CLI decides
        self.endings: dict[str, str] = {}  # trial_id -> how it ended, as printed
        self.signals: list[int] = []  # SIGINT / SIGTERM received during a sweep
        self.tune_stop = None  # Tune's graceful stop of the running fit (its SIGINT handler)
        self.storage_failure: str | None = None  # why the storage failed, once it has
        self.budget = None  # the running sweep's search.budget.Budget
        self.plan = None  # the running sweep's search.plan.Plan
        self.restored_trials: set[str] | None = None  # a resumed sweep's trials, as Tune restored them

    def start_sweep(self, budget, plan) -> None:
        """A sweep of the experiment starts: its budget and plan replace the last sweep's."""
        self.budget, self.plan, self.restored_trials = budget, plan, None

    @contextlib.contextmanager
    def active(self) -> Iterator[SweepContext]:
        """Make this the context `current()` gives, for the `with` block."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


def _print(line: str) -> None:
    print(line, flush=True)


_ACTIVE: ContextVar[SweepContext | None] = ContextVar("search_sweep_context", default=None)


def current() -> SweepContext:
    """The context of the experiment running here. Outside one it is an error, not a fresh context
    that would swallow what a callback reports."""
    context = _ACTIVE.get()
    if context is None:
        raise RuntimeError("no sweep is running here: search.engine runs sweeps inside `with SweepContext().active()`")
    return context


@contextlib.contextmanager
def joined() -> Iterator[SweepContext]:
    """The running experiment's context, or a new one for the block: a sweep run on its own (a
    test, a benchmark) is an experiment of one sweep."""
    context = _ACTIVE.get()
    if context is not None:
        yield context
    else:
        with SweepContext().active() as context:
            yield context
