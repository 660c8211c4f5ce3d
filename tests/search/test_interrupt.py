"""search.interrupt: a signal during a sweep is recorded on the experiment's context and handed to
Tune's graceful stop; a second one aborts; afterwards Ctrl-C raises KeyboardInterrupt again."""
import os
import signal

import pytest

from search.interrupt import SignalWatch, received, restore_handlers, stop_sweep


def test_a_signal_is_recorded_and_passed_to_tunes_stop_then_a_second_aborts(sweep_context):
    stops = []

    def tunes_stop(signum, frame):  # stands for the handler Tune installs in fit()
        stops.append(signum)

    signal.signal(signal.SIGINT, tunes_stop)
    try:
        SignalWatch().setup()
        os.kill(os.getpid(), signal.SIGTERM)
        assert received() == signal.SIGTERM and stops == [signal.SIGTERM]
        assert sweep_context.signals == [signal.SIGTERM] and sweep_context.tune_stop is tunes_stop
        stop_sweep()  # the storage's stop goes the same way, without a signal
        assert stops == [signal.SIGTERM, signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the second signal: no graceful stop this time
    finally:
        restore_handlers()
    assert sweep_context.tune_stop is None and signal.getsignal(signal.SIGTERM) is not tunes_stop
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
