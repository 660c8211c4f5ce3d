"""The budget, its meter and the limiter, on a fake clock: no Ray cluster needed."""
from types import SimpleNamespace

from ray.tune.execution.placement_groups import PlacementGroupFactory
from ray.tune.search import Searcher

import search.limiter
import search.schedulers
from search.budget import Budget, BudgetMeter, BudgetUse
from search.context import current
from search.limiter import BudgetLimiter, SweepGenerator
from search.plan import make_plan
from search.schedulers import DistributeWithinNode
from search.settings import Settings
from tests.search.conftest import FakeClock


class Always(Searcher):
    def __init__(self):
        super().__init__(metric="val_acc", mode="max")

    def suggest(self, trial_id):
        return {"x": 1}

    def on_trial_complete(self, trial_id, result=None, error=False):
        pass


CLOCKED = [search.limiter, search.schedulers]


def limiter_for(clock, budget_s=100.0, rungs=(20.0,), window=None, max_concurrent=1, num_samples=None):
    """A limiter whose plan has the given rungs (seconds of training) and window for new trials."""
    budget = Budget(budget_s, 2, clock=clock)
    plan = make_plan(Settings(), Budget(budget_s))._replace(rungs=tuple(rungs), start_window_s=window or budget_s)
    return BudgetLimiter(Always(), max_concurrent, budget, plan, num_samples)


def test_no_trial_starts_that_cannot_reach_the_first_rung(clock):
    limiter = limiter_for(clock, budget_s=100, rungs=(20.0,))
    assert limiter.suggest("a") == {"x": 1}  # the deadline is 1100; the first wave always starts
    limiter.on_trial_complete("a")
    limiter._suggested_at.clear()  # (start-up is tested below)
    for s in (5.0, 10.0, 15.0):
        limiter.on_trial_result("a", {"epoch_wall_s": s})
    clock.now = 1065.0  # 35 s left >= the first rung (20 s) and one epoch (10 s)
    assert limiter.suggest("b") == {"x": 1}
    limiter.on_trial_complete("b")
    clock.now = 1075.0  # 25 s left < 30 s
    said = []
    current().say = said.append  # the line goes where the command running the sweep chose
    assert limiter.suggest("c") == Searcher.FINISHED and limiter.suggest("d") == Searcher.FINISHED
    assert said == ["budget: 25s left, less than a new trial's start-up (0s), first rung and one epoch (10s): "
                    "no new trials start"]  # said once


def test_a_restored_limiter_gets_the_running_sweeps_fresh_budget(clock):
    limiter = limiter_for(clock, budget_s=100)
    limiter.suggest("a")
    limiter.on_trial_result("a", {"epoch_wall_s": 10.0})
    state = limiter.get_state()
    clock.now = 5000.0  # long after the first deadline: a resumed sweep
    current().start_sweep(Budget(100, 2, clock=clock), limiter.plan)
    resumed = limiter_for(FakeClock(), budget_s=100)  # unpickled: a stale budget
    resumed.set_state(state)
    assert resumed.budget is current().budget and resumed.budget.left() == 100
    resumed.on_trial_complete("a")
    assert resumed.suggest("b") == {"x": 1}


def test_a_resume_makes_the_trials_that_tunes_restored_state_lacks(clock):
    """On s3:// a driver killed between Tune's two uploads leaves its generator's count (and the
    limiter's) ahead of the trials in the experiment state: the fourth was made, then lost."""
    from ray.tune.experiment import Experiment

    limiter = BudgetLimiter(Always(), max_concurrent=4, num_samples=4)
    generator = SweepGenerator(limiter)
    generator.add_configurations([Experiment("exp", lambda config: None, num_samples=4)])
    ids = [generator.next_trial().trial_id for _ in range(4)]
    saved_generator, saved_limiter = generator.get_state(), limiter.get_state()
    assert generator.is_finished() and limiter.starts_no_more

    def resumed(restored):
        current().restored_trials = restored
        again = BudgetLimiter(Always(), max_concurrent=4, num_samples=4)
        again.set_state(saved_limiter)
        generator = SweepGenerator(again)
        generator.set_state(saved_generator)
        return generator, again

    assert resumed(None)[0].is_finished()  # as Tune saved it: the lost trial would never be made
    generator, again = resumed(set(ids[:3]))
    assert not generator.is_finished() and not again.starts_no_more and again.live_trials == set(ids[:3])
    assert generator.next_trial() is not None and generator.is_finished()


def test_without_a_budget_it_only_limits_concurrency(clock):
    limiter = BudgetLimiter(Always(), max_concurrent=1, budget=Budget(None, clock=clock), plan=None)
    assert limiter.suggest("a") == {"x": 1}
    assert limiter.suggest("b") is None  # one live trial already


def test_no_trial_starts_after_the_plans_window(clock):
    limiter = limiter_for(clock, budget_s=100, window=30)
    assert limiter.suggest("a") == {"x": 1}
    clock.now = 1020.0  # a slow start (workers, data, a busy node): the window counts from the first epoch
    limiter.on_trial_result("a", {"epoch_wall_s": 1.0})
    limiter.on_trial_complete("a")
    clock.now = 1049.0
    assert limiter.suggest("b") == {"x": 1}
    limiter.on_trial_complete("b")
    clock.now = 1051.0  # 49 s of budget left, plenty for a rung, but the window has closed
    assert limiter.suggest("c") == Searcher.FINISHED


def test_the_first_wave_starts_whatever_the_plan(clock):
    limiter = limiter_for(clock, budget_s=100, window=1, max_concurrent=2)
    clock.now = 1050.0  # past the window, but no trial holds the resources yet
    assert limiter.suggest("a") == {"x": 1} and limiter.suggest("b") == {"x": 1}


def test_start_up_time_counts_against_the_budget(clock):
    # Trial a waits 20 s for its worker before a 10 s epoch: a new trial needs 20 + 10 + 20 s (the rung).
    limiter = limiter_for(clock, budget_s=100, rungs=(20.0,))
    assert limiter.suggest("a") == {"x": 1}
    clock.now = 1030.0
    limiter.on_trial_result("a", {"epoch_wall_s": 10.0})
    assert limiter.startup_seconds == [20.0]
    limiter.on_trial_complete("a")
    clock.now = 1055.0  # 45 s left: the rung and an epoch (30 s) would fit, with start-up (50 s) not
    assert limiter.suggest("b") == Searcher.FINISHED


def test_later_results_and_restored_trials_are_not_start_up(clock):
    limiter = limiter_for(clock, budget_s=1000)
    limiter.suggest("a")
    clock.now = 1005.0
    limiter.on_trial_result("a", {"epoch_wall_s": 4.0})
    clock.now = 1500.0
    limiter.on_trial_result("a", {"epoch_wall_s": 4.0})  # not a first result
    limiter.on_trial_result("z", {"epoch_wall_s": 4.0})  # a trial this limiter never suggested
    assert limiter.startup_seconds == [1.0]


def test_it_says_when_no_trial_will_start_any_more(clock):
    limiter = BudgetLimiter(Always(), max_concurrent=4, budget=None, plan=None, num_samples=2)
    limiter.suggest("a")
    assert not limiter.starts_no_more
    limiter.suggest("b")
    assert limiter.starts_no_more  # every trial asked for has started
    budgeted = limiter_for(clock, budget_s=100, window=30, num_samples=9)
    budgeted.suggest("a")
    budgeted.on_trial_result("a", {"epoch_wall_s": 1.0})
    budgeted.on_trial_complete("a")
    clock.now += 31
    assert budgeted.suggest("b") == Searcher.FINISHED and budgeted.starts_no_more


def test_the_budget_owns_the_deadline_and_a_restart_renews_it():
    clock = FakeClock()
    budget = Budget(60, 2, clock=clock)
    assert budget.deadline == 1060 and budget.left() == 60 and not budget.over()
    clock.now = 1059.5
    assert budget.over()  # within the second Tune's own check may lag
    budget.restart()
    assert budget.deadline == 1119.5 and budget.held == 0
    assert Budget(None, clock=clock).left() == float("inf") and not Budget(None, clock=clock).over()


def test_the_budget_line_splits_resource_seconds_three_ways():
    use = BudgetUse(resources=2, unit="CPU", seconds=3600, training=0.97 * 7200, starting=0.02 * 7200)
    assert use.line() == "budget: 2 CPUs x 3600 s, 97% spent training, 2% starting trials, 1% idle"
    assert BudgetUse(0.5, "GPU", 100, 40, 0).line() == "budget: 0.5 GPUs x 100 s, 80% spent training, " \
                                                       "0% starting trials, 20% idle"


def test_a_sweep_done_before_its_deadline_leaves_the_rest_unused_not_idle():
    clock = FakeClock()
    budget = Budget(3600, 2, clock=clock)
    budget.training, budget.held = 30.0, 36.0
    clock.now += 20
    assert budget.use().line().endswith("100% idle")  # mid-sweep: the rest may still be spent
    budget.finish()
    clock.now += 100  # (read later: the sweep's end counts)
    use = budget.use()
    assert (use.ran, use.unused, use.idle) == (20.0, 7160.0, 4.0)
    assert use.line() == "budget: 2 CPUs x 3600 s, 0% spent training, 0% starting trials, 0% idle, 99% unused " \
                         "(done after 20 s)"
    budget.restart()
    clock.now += 3599.5  # done at its deadline: the whole budget, as before
    budget.finish()
    assert budget.use().ran is None and budget.use().line().endswith("idle")


def _trial(status: str, cpus: float):
    return SimpleNamespace(status=status, placement_group_factory=PlacementGroupFactory([{"CPU": cpus}]))


def test_the_meter_counts_held_and_training_resource_seconds(clock):
    current().start_sweep(Budget(100, 2, clock=clock), None)
    meter = BudgetMeter()
    a, b, c = _trial("RUNNING", 1), _trial("PAUSED", 1), _trial("TERMINATED", 1)
    meter.on_step_end(0, [a, b, c])  # the first step: nothing held yet
    clock.now += 10
    meter.on_step_end(1, [a, b, c])  # a held 1 CPU for 10 s; a paused or ended trial holds none
    a.placement_group_factory = PlacementGroupFactory([{"CPU": 2}])  # grown to both CPUs
    b.status = "PENDING"  # starting, or waiting for CPUs: held, but never more than the sweep has
    clock.now += 20
    meter.on_step_end(2, [a, b])
    meter.on_trial_result(2, [a, b], a, {"epoch_wall_s": 15.0})
    use = current().budget.use()
    assert (use.training, use.starting, use.idle) == (30.0, 20.0, 150.0)
    clock.now += 500  # past the deadline: nothing more is counted
    meter.on_step_end(3, [a])
    assert current().budget.use().starting == 20.0 + 2 * 70


def test_node_cpus_are_read_from_ray_at_most_every_30_s(clock, monkeypatch):
    """Trial growth caps a trial at the smallest live node's CPUs, without a call to Ray per result."""
    calls = []
    nodes = [{"Alive": True, "Resources": {"CPU": 8}}, {"Alive": True, "Resources": {"CPU": 4}},
             {"Alive": False, "Resources": {"CPU": 2}}, {"Alive": True, "Resources": {}}]
    monkeypatch.setattr(search.schedulers.ray, "nodes", lambda: calls.append(1) or nodes)
    grow = DistributeWithinNode(BudgetLimiter(Always(), 2), increase_by={"CPU": 1})
    assert [grow.node_cap(), grow.node_cap()] == [4, 4] and len(calls) == 1
    clock.now += 31
    nodes[1]["Alive"] = False
    assert grow.node_cap() == 8 and len(calls) == 2


def test_a_trial_anneals_to_the_sweeps_deadline_and_a_resumed_one_counts_what_it_used():
    from search.budget import trial_seconds

    now = lambda: 1000.0  # noqa: E731
    assert trial_seconds(None, deadline=1600.0, clock=now) == 600.0
    assert trial_seconds(300.0, deadline=1600.0, clock=now) == 300.0  # its own budget is shorter
    assert trial_seconds(None, deadline=1600.0, used_s=250.0, clock=now) == 850.0  # resumed after 250 s
    assert trial_seconds(None, deadline=900.0, clock=now) == 1.0  # past the deadline: one more second, not less


def test_the_watchdog_waits_a_minute_of_start_up_and_its_epochs():
    from search.budget import overdue

    assert not overdue(60 + 3 * 100.0, epoch_s=100.0, epochs=3) and overdue(60 + 3 * 100.0 + 1, 100.0, 3)


def test_a_trial_whose_run_just_ended_is_not_grown(clock, monkeypatch):
    """Once no trial starts, freed CPUs go to running trials, but not to one whose last epoch ended
    its run (max epochs, its time budget, early stopping): it would restart only to end."""
    limiter = BudgetLimiter(Always(), 2, num_samples=2)
    limiter.started = 2  # every trial asked for has started
    grown = []
    more = PlacementGroupFactory([{"CPU": 2}])
    monkeypatch.setattr(search.schedulers.DistributeResources, "__call__", lambda *a: grown.append(1) or more)
    grow = DistributeWithinNode(limiter, increase_by={"CPU": 1})
    monkeypatch.setattr(grow, "node_cap", lambda: 8)
    assert grow(None, None, {"run_ends": "epochs"}, None) is None and not grown
    assert grow(None, None, {"run_ends": ""}, None) is more and grown == [1]
