"""RecheckedASHA alone, on hand-fed results: no Ray cluster needed."""
from types import SimpleNamespace

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from search.rungs import RecheckedASHA

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def _race(scheduler_cls, first: float, second: float, after: float = 0.6) -> list[str]:
    """Two trials reach the epoch-2 rung in turn (`a` scores `first`, `b` `second`); then
    each reports epoch 3. Returns the four decisions: a@2, b@2, a@3, b@3."""
    sched = scheduler_cls(time_attr="epoch", metric="acc", mode="max", max_t=20, grace_period=2,
                          reduction_factor=3)
    a, b = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
    for t in (a, b):
        sched.on_trial_add(None, t)
    for t in (a, b):
        sched.on_trial_result(None, t, {"epoch": 1, "acc": 0.3})
    return [sched.on_trial_result(None, a, {"epoch": 2, "acc": first}),
            sched.on_trial_result(None, b, {"epoch": 2, "acc": second}),
            sched.on_trial_result(None, a, {"epoch": 3, "acc": after}),
            sched.on_trial_result(None, b, {"epoch": 3, "acc": after})]


def test_plain_asha_lets_the_first_arrival_run_on_when_it_is_behind():
    assert _race(ASHAScheduler, first=0.50, second=0.55) == [CONTINUE] * 4


def test_a_trial_outranked_at_its_rung_stops_at_its_next_result():
    assert _race(RecheckedASHA, first=0.50, second=0.55) == [CONTINUE, CONTINUE, STOP, CONTINUE]


def test_the_later_arrival_that_is_behind_stops_as_in_asha():
    assert _race(RecheckedASHA, first=0.55, second=0.50) == [CONTINUE, STOP, CONTINUE, CONTINUE]


def test_a_trial_past_a_higher_rung_is_not_judged_at_a_lower_one():
    sched = RecheckedASHA(time_attr="epoch", metric="acc", mode="max", max_t=20, grace_period=2,
                          reduction_factor=3)
    a, b = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
    for t in (a, b):
        sched.on_trial_add(None, t)
    for epoch, acc in ((2, 0.50), (6, 0.60)):  # a passes the rungs at 2 and 6 alone
        assert sched.on_trial_result(None, a, {"epoch": epoch, "acc": acc}) == CONTINUE
    assert sched.on_trial_result(None, b, {"epoch": 2, "acc": 0.55}) == CONTINUE
    assert sched.on_trial_result(None, a, {"epoch": 7, "acc": 0.61}) == CONTINUE


def test_the_cnn_space_races_with_rechecked_rungs_and_growing_trials():
    from ray.tune.schedulers import ResourceChangingScheduler

    from search.budget import Budget
    from search.limiter import make_searcher
    from search.plan import make_plan
    from search.schedulers import make_base_scheduler, make_scheduler
    from search.space import load_sweeps

    cnn, dnn = load_sweeps("configs/cnn.yaml")[0], load_sweeps("configs/dnn.yaml")[0]
    cnn.settings.max_concurrent = dnn.settings.max_concurrent = 2
    plan = make_plan(cnn.settings, Budget(cnn.settings.time_budget_s), epoch_s=60.0)
    asha = make_base_scheduler(cnn, plan)
    assert isinstance(asha, RecheckedASHA) and asha.rung_time == "elapsed_s"  # rungs in seconds of training
    assert sorted(asha.rungs) == [360, 1080, 3240]
    assert not isinstance(make_base_scheduler(dnn, make_plan(dnn.settings, Budget(1200))), RecheckedASHA)
    assert isinstance(make_scheduler(cnn, make_searcher(cnn, 0), plan), ResourceChangingScheduler)


def test_rung_records_are_the_ones_asha_keeps():
    from search.rungs import milestones

    assert milestones(6, 60, 3) == [6, 18, 54] and milestones(1, 4, 2) == [1, 2, 4]
    sched = RecheckedASHA(time_attr="epoch", metric="acc", mode="max", max_t=20, grace_period=2,
                          reduction_factor=3)
    a = SimpleNamespace(trial_id="a")
    sched.on_trial_add(None, a)
    for epoch in (1, 2, 3, 7):  # recorded at the first result at or past each milestone (2, then 6)
        sched.on_trial_result(None, a, {"epoch": epoch, "acc": epoch / 10})
    assert sched.rungs == {2: {"a": 0.2}, 6: {"a": 0.7}, 18: {}}
