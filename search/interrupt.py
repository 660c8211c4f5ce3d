"""Ctrl-C and SIGTERM stop a whole `search run`, the way Tune stops one experiment.

On SIGINT, `Tuner.fit` ends gracefully: it saves the experiment state one last time and
leaves the running trials to be resumed. But it then returns as if the sweep had finished,
so a caller cannot tell the two apart, and SIGTERM is not handled at all. `SignalWatch`
records the signal and hands both signals to Tune's graceful stop; the command then stops
every sweep and exits 130.

Tune installs its handler inside `fit` before it sets up callbacks (ray/tune/tune.py,
`_setup_signal_catching`); `setup` below relies on that order. No public API exposes it:
tests/search/test_user_path.py interrupts a real sweep and fails if it changes.
"""
from __future__ import annotations

import signal

from ray.tune import Callback

from fer.command import catch_interrupts, interrupt
from search.context import current


def received() -> int | None:
    """The signal that stopped a sweep of this process, if any."""
    signals = current().signals
    return signals[-1] if signals else None


def stop_sweep() -> None:
    """Stop the running sweep as Ctrl-C does (state saved, trials left to resume), without a signal:
    for search.storage, when the storage fails."""
    stop = current().tune_stop
    if callable(stop):
        stop(signal.SIGINT, None)


def restore_handlers() -> None:
    """After a sweep: Ctrl-C and SIGTERM raise KeyboardInterrupt again (the handlers set for the
    sweep would otherwise pass a signal on to a Tune run that has ended, and lose it)."""
    catch_interrupts()
    current().tune_stop = None


def _is_tunes(handler) -> bool:
    """Whether a SIGINT handler is Tune's graceful stop (not Python's default, nor fer's)."""
    return callable(handler) and handler not in (signal.default_int_handler, interrupt)


class SignalWatch(Callback):
    """Records a SIGINT or SIGTERM received during a sweep and passes it to Tune's stop."""

    def setup(self, **info):
        context = current()  # the experiment this fit belongs to (search.context)
        graceful = signal.getsignal(signal.SIGINT)  # Tune's handler for this fit
        graceful = graceful if _is_tunes(graceful) else None
        if graceful is not None:
            context.tune_stop = graceful

        def on_signal(signum, frame):
            context.signals.append(signum)
            for s in (signal.SIGINT, signal.SIGTERM):  # a second signal aborts at once
                signal.signal(s, signal.default_int_handler)
            if graceful is not None:
                graceful(signum, frame)
            else:
                raise KeyboardInterrupt

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
