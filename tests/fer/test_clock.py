"""fer.clock: a run's training time, its budget and its resume."""
import pytest

from fer.clock import RunClock


class Ticks:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_clock_counts_epochs_and_the_running_one_against_the_budget():
    t = Ticks()
    clock = RunClock(45.0, clock=t)
    clock.start_epoch()
    t.now += 10
    assert clock.in_epoch() == 10 and clock.used() == 10 and clock.share() == 10 / 45
    assert clock.end_epoch() == 10 and clock.elapsed == 10
    assert clock.another_fits(10) and clock.another_fits(35) and not clock.another_fits(35.5)
    assert RunClock(None, clock=t).another_fits(1e9) and RunClock(0, clock=t).share() == 0.0  # no budget


def test_a_resumed_run_carries_its_training_time_on():
    t = Ticks()
    first = RunClock(45.0, clock=t)
    first.start_epoch()
    t.now += 30
    first.end_epoch()
    resumed = RunClock(45.0, clock=t)
    resumed.load_state_dict(first.state_dict())
    assert resumed.elapsed == 30 and not resumed.another_fits(20)
    assert first.state_dict() == {"elapsed_s": 30}


def test_a_refreshed_budget_decides_whether_another_epoch_fits():
    """(A sweep's trial: its deadline, asked before each next epoch, has also counted the time
    between epochs, which this clock does not.)"""
    t = Ticks()
    clock = RunClock(45.0, clock=t)
    clock.start_epoch()
    t.now += 10
    clock.end_epoch()
    asked = []
    clock.refresh = lambda used: asked.append(used) or 18.0  # 8 s left of the deadline, not 35
    assert not clock.another_fits(10) and clock.another_fits(8) and asked == [10, 10] and clock.budget_s == 18.0
    clock.refresh = lambda used: -5.0  # past the deadline
    assert not clock.another_fits(0.0) and clock.budget_s > 0  # a budget, still: nothing fits
    unbounded = RunClock(None, clock=t)
    unbounded.refresh = lambda used: pytest.fail("a run without a budget asked its deadline")
    assert unbounded.another_fits(1e9)
