"""The budget limiter alone, on a fake clock: no Ray cluster needed."""
import pytest
from ray.tune.search import Searcher

import search.sweep
from search.sweep import BudgetLimiter, DistributeWithinNode


class Always(Searcher):
    def __init__(self):
        super().__init__(metric="val_acc", mode="max")

    def suggest(self, trial_id):
        return {"x": 1}

    def on_trial_complete(self, trial_id, result=None, error=False):
        pass


class Clock:
    now = 1000.0

    def time(self):
        return self.now

    monotonic = time


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(search.sweep, "time", c)
    return c


def test_no_trial_starts_that_cannot_reach_the_first_rung(clock):
    limiter = BudgetLimiter(Always(), max_concurrent=4, budget_s=100, min_epochs=2)
    assert limiter.suggest("a") == {"x": 1}  # the deadline is now 1100
    for s in (25.0, 30.0, 35.0):
        limiter.on_trial_result("a", {"time_this_iter_s": s})
    clock.now = 1035.0  # 1035 + 2 x 30 s < 1100
    assert limiter.suggest("b") == {"x": 1}
    clock.now = 1045.0  # 1045 + 60 > 1100
    assert limiter.suggest("c") == Searcher.FINISHED


def test_a_restored_limiter_gets_a_fresh_budget(clock):
    limiter = BudgetLimiter(Always(), max_concurrent=4, budget_s=100, min_epochs=1)
    limiter.suggest("a")
    limiter.on_trial_result("a", {"time_this_iter_s": 10.0})
    state = limiter.get_state()
    clock.now = 5000.0  # long after the first deadline: a resumed sweep
    resumed = BudgetLimiter(Always(), max_concurrent=4, budget_s=100, min_epochs=1)
    resumed.set_state(state)
    assert resumed.suggest("b") == {"x": 1}


def test_without_a_budget_it_only_limits_concurrency(clock):
    limiter = BudgetLimiter(Always(), max_concurrent=1, budget_s=None, min_epochs=1)
    assert limiter.suggest("a") == {"x": 1}
    assert limiter.suggest("b") is None  # one live trial already


def test_no_trial_starts_after_the_exploration_window(clock):
    limiter = BudgetLimiter(Always(), max_concurrent=4, budget_s=100, min_epochs=1, explore_s=30)
    assert limiter.suggest("a") == {"x": 1}  # the window closes at 1030
    limiter.on_trial_result("a", {"time_this_iter_s": 1.0})
    clock.now = 1029.0
    assert limiter.suggest("b") == {"x": 1}
    clock.now = 1031.0  # 69 s of budget left, plenty for a rung, but the window has closed
    assert limiter.suggest("c") == Searcher.FINISHED


def test_start_up_time_counts_against_the_budget(clock):
    # Trial a waits 20 s for its worker before a 10 s epoch: a new trial needs 20 + 2 x 10 s.
    limiter = BudgetLimiter(Always(), max_concurrent=4, budget_s=100, min_epochs=2)
    assert limiter.suggest("a") == {"x": 1}  # the deadline is now 1100
    clock.now = 1030.0
    limiter.on_trial_result("a", {"time_this_iter_s": 10.0})
    assert limiter.startup_seconds == [20.0]
    clock.now = 1065.0  # 35 s left: two epochs (20 s) would fit, start-up and two epochs (40 s) would not
    assert limiter.suggest("b") == Searcher.FINISHED


def test_later_results_and_restored_trials_are_not_start_up(clock):
    limiter = BudgetLimiter(Always(), max_concurrent=4, budget_s=1000, min_epochs=1)
    limiter.suggest("a")
    clock.now = 1005.0
    limiter.on_trial_result("a", {"time_this_iter_s": 4.0})
    clock.now = 1500.0
    limiter.on_trial_result("a", {"time_this_iter_s": 4.0})  # not a first result
    limiter.on_trial_result("z", {"time_this_iter_s": 4.0})  # a trial this limiter never suggested
    assert limiter.startup_seconds == [1.0]


def test_it_says_when_no_trial_will_start_any_more(clock):
    limiter = BudgetLimiter(Always(), max_concurrent=4, budget_s=None, min_epochs=1, num_samples=2)
    limiter.suggest("a")
    assert not limiter.starts_no_more
    limiter.suggest("b")
    assert limiter.starts_no_more  # every trial asked for has started
    budgeted = BudgetLimiter(Always(), max_concurrent=4, budget_s=100, min_epochs=1, explore_s=30, num_samples=9)
    budgeted.suggest("a")
    clock.now += 31
    assert budgeted.suggest("b") == Searcher.FINISHED and budgeted.starts_no_more


def test_node_cpus_are_read_from_ray_at_most_every_30_s(clock, monkeypatch):
    """Trial growth caps a trial at the smallest live node's CPUs, without a call to Ray per result."""
    calls = []
    nodes = [{"Alive": True, "Resources": {"CPU": 8}}, {"Alive": True, "Resources": {"CPU": 4}},
             {"Alive": False, "Resources": {"CPU": 2}}, {"Alive": True, "Resources": {}}]
    monkeypatch.setattr(search.sweep.ray, "nodes", lambda: calls.append(1) or nodes)
    grow = DistributeWithinNode(BudgetLimiter(Always(), 2, None, 1), increase_by={"CPU": 1})
    assert [grow.node_cap(), grow.node_cap()] == [4, 4] and len(calls) == 1
    clock.now += 31
    nodes[1]["Alive"] = False
    assert grow.node_cap() == 8 and len(calls) == 2
