"""search.context: one experiment's state, seen by the callbacks of that experiment only."""
import pytest

from search.context import SweepContext, current, joined


def test_callbacks_outside_an_experiment_are_an_error_not_a_silent_fresh_state():
    with pytest.raises(RuntimeError, match="no sweep is running here"):
        current()


def test_each_experiment_sees_its_own_state_and_the_outer_one_returns():
    outer, inner = SweepContext(), SweepContext()
    with outer.active():
        current().endings["a"] = "finished"
        with inner.active():
            assert current() is inner and current().endings == {}
            current().start_sweep("budget", "plan")
        assert current() is outer and outer.budget is None and outer.endings == {"a": "finished"}
    assert inner.budget == "budget" and inner.plan == "plan"


def test_a_sweep_run_alone_joins_the_running_experiment_or_gets_its_own():
    with joined() as alone:
        assert current() is alone
    with pytest.raises(RuntimeError):
        current()
    with SweepContext().active() as running, joined() as sweep:
        assert sweep is running
