"""search.plan: the schedule from the budget and the measured epoch time."""
import pytest

from search.budget import Budget
from search.plan import calibration_config, duration, make_plan, measure_epoch
from search.settings import Settings
from search.space import load_sweeps


def shares(plan):
    return [round(r / plan.budget_s, 6) for r in plan.rungs], round(plan.start_window_s / plan.budget_s, 6)


def test_a_slower_and_a_faster_machine_get_rungs_at_the_same_shares_of_the_budget():
    s = Settings(time_budget_s=3600, grace_period=1, rung_share=0.1, reduction_factor=3)
    here = make_plan(s, Budget(3600), epoch_s=60.0)
    slow, fast = make_plan(s, Budget(3600), epoch_s=240.0), make_plan(s, Budget(3600), epoch_s=2.0)
    assert shares(here) == shares(slow) == shares(fast) == ([0.1, 0.3, 0.9], 0.3)
    assert here.time_attr == "elapsed_s" and here.max_t == 3600  # ASHA over seconds of training, to the deadline
    assert here.rungs[0] / here.epoch_s == 6 and fast.rungs[0] / fast.epoch_s == 180  # epochs differ, shares do not


def test_the_first_rung_waits_for_grace_period_epochs():
    s = Settings(time_budget_s=1200, grace_period=2)
    plan = make_plan(s, Budget(1200), epoch_s=300.0)  # 2 epochs (600 s) are later than 10% of the budget (120 s)
    assert plan.rungs == (600.0,)
    assert plan.start_window_s == pytest.approx(1200 - 600 - 300)  # a trial started then still reaches the rung
    # two epochs would not fit: no rung, every trial to the deadline
    hopeless = make_plan(s, Budget(1200), epoch_s=700.0)
    assert hopeless.rungs == () and hopeless.start_window_s == 500.0  # while one epoch still fits
    assert "rungs at none" in hopeless.line()


def test_the_plan_line_says_what_was_measured_and_decided():
    s = Settings(time_budget_s=3600, grace_period=1)
    line = make_plan(s, Budget(3600), epoch_s=148.0, measured="vgg_cnn at 1 CPU").line()
    assert line == ("plan (measured 148 s/epoch for vgg_cnn at 1 CPU): new trials for 18 min from the first epoch, "
                    "rungs at 6 min, 18 min, 54 min of training (~2 epochs to the first), survivors to the deadline "
                    "(60 min)")
    unmeasured = make_plan(s, Budget(3600)).line()
    assert unmeasured.startswith("plan (no epoch time measured here): new trials for 18 min from the first epoch")
    assert [duration(x) for x in (45, 150, 360, 7200)] == ["45 s", "2.5 min", "6 min", "2 h"]


def test_an_explicit_explore_share_and_the_epoch_rungs_without_a_budget():
    assert make_plan(Settings(time_budget_s=1000, explore_share=0.25), Budget(1000)).start_window_s == 250
    epochs = make_plan(Settings(max_epochs=54, grace_period=6, reduction_factor=3), Budget(None))
    assert (epochs.time_attr, epochs.rungs, epochs.max_t) == ("training_iteration", (6, 18, 54), 54)
    fifo = make_plan(Settings(time_budget_s=100, scheduler="fifo", max_epochs=5), Budget(100))
    assert fifo.time_attr == "training_iteration"


def test_trials_run_to_the_budget_unless_max_epochs_caps_them():
    assert Settings(time_budget_s=60).epochs_cap() == 100_000 and Settings(time_budget_s=60).trials is None
    assert Settings().epochs_cap() == 10 and Settings().trials == 8
    assert Settings(time_budget_s=60, max_epochs=7, num_samples=3).epochs_cap() == 7


def test_the_calibration_config_is_the_first_trials():
    cnn = load_sweeps("configs/cnn.yaml")[0]
    config = calibration_config(cnn)
    assert config["model"]["name"] == "vgg_cnn" and config["train"]["crop_size"] == 40  # warm_start[0]
    dnn = load_sweeps("configs/dnn.yaml")[0]
    assert calibration_config(dnn)["model"]["input_pool"] == 2 and calibration_config(dnn)["train"]["batch_size"] == 256


SPACE = """family: dnn
settings: {{cpus_per_trial: 1, time_budget_s: 30}}
model: {{widths: [32]}}
train: {{batch_size: 64, lr: {{loguniform: [1.0e-3, 1.0e-2]}}, precision: {precision}}}
"""


def test_the_plan_times_the_first_trial_as_its_trainer_will_and_builds_no_optimizer(synthetic, tmp_path,
                                                                                  monkeypatch):
    """measure_epoch times what the first trial's Trainer would choose (so the trial finds it cached),
    without a Trainer: an optimizer's first import of torch._dynamo costs seconds of the sweep's budget."""
    import torch

    from fer.config import resolve_run
    from fer.data import split_for_training
    from fer.train import Trainer

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    for precision in ("auto", "fp32"):
        (tmp_path / f"{precision}.yaml").write_text(SPACE.format(precision=precision))
    auto, given = (load_sweeps(str(tmp_path / f"{p}.yaml"))[0] for p in ("auto", "fp32"))
    with monkeypatch.context() as m:
        m.setattr(torch.optim.Optimizer, "__init__", lambda *a, **k: pytest.fail("the plan built an optimizer"))
        epoch_s, words, rate = measure_epoch(auto, synthetic)
        assert measure_epoch(given, synthetic) is None  # a given precision and layout: nothing to time
    assert epoch_s > 0 and rate > 0 and "measured in" in words
    run = resolve_run(calibration_config(auto))
    train, val, _ = split_for_training(synthetic, run["train"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a trial trains at its cpus_per_trial threads, part of the cache key
    try:
        speed = Trainer.from_run(run, train, val).speed
    finally:
        torch.set_num_threads(threads)
    assert speed.how == "cached" and speed.images_per_s == rate
