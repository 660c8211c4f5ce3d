"""fer.clock: a run's training time, its budget and its resume."""
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
