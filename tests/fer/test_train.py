import math

import numpy as np
import pytest
import torch

from fer.config import load_run
from fer.errors import ConfigError
from fer.optim import one_cycle
from fer.train import Trainer
from fer.transforms import beta_share, eval_views, mixup, random_crop, random_erasing
from tests.factories import TINY_CNN

TINY = [*TINY_CNN, "train.epochs=2"]
METRIC_KEYS = {"train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "epoch_s", "images_per_s",
               "epoch", "elapsed_s"}


def _run(extra=()):
    return load_run(None, TINY + list(extra))


def _fit(synthetic, extra=()):
    tr, va = synthetic.select("Training"), synthetic.select("PublicTest")
    return Trainer.from_run(_run(extra), tr, va).fit()


def test_callback_gets_every_metric_each_epoch(synthetic):
    seen = []
    tr, va = synthetic.select("Training"), synthetic.select("PublicTest")
    Trainer.from_run(_run(), tr, va).fit(seen.append)
    assert [m["epoch"] for m in seen] == [1, 2]
    assert METRIC_KEYS <= set(seen[0])
    assert [m.pop("run_ends") for m in seen] == ["", "epochs"]  # the last epoch says why the run ends
    assert all(math.isfinite(v) for v in seen[-1].values())


def test_same_seed_same_metrics_on_cpu(synthetic):
    extra = ["train.flip=true", "train.crop_pad=4", "train.erasing=0.5", "train.rotation=10"]
    a, b = _fit(synthetic, extra), _fit(synthetic, extra)
    timing = ("epoch_s", "images_per_s", "elapsed_s", "epoch_wall_s")
    strip = lambda h: [{k: v for k, v in m.items() if k not in timing} for m in h]  # noqa: E731
    assert strip(a) == strip(b)
    c = _fit(synthetic, extra + ["train.seed=1"])
    assert strip(a) != strip(c)


# The recipes below are compared at one precision and layout: under `auto` a bf16 CPU picks bf16 for
# the plain recipe too, and the bf16 recipe would differ from it by its logit adjustment alone.
MEASURED_NOTHING = ["train.precision=fp32", "train.channels_last=false"]


@pytest.fixture(scope="module")
def plain_history(synthetic):
    return _fit(synthetic, MEASURED_NOTHING)


@pytest.mark.parametrize("extra, last_lr", [
    (["train.optimizer=sgd", "train.schedule=cosine", "train.nesterov=true"], 0.0),  # annealed by the end
    (["train.optimizer=adamw", "train.schedule=onecycle", "train.weight_decay=0.01"], 0.0),
    (["train.schedule=plateau", "train.class_balance=loss", "train.label_smoothing=0.1"], 1e-3),  # patience 3
    (["train.schedule=step", "train.step_size=1", "train.class_balance=sampler"], 1e-5),  # x0.1 per epoch
    (["train.crop_size=40", "train.tta=tencrop", "train.flip=true", "train.scale=0.1", "train.translate=0.1"], 1e-3),
    (["train.precision=bf16", "train.channels_last=true", "train.logit_adjust=1.0"], 1e-3),
    (["train.mixup=0.2", "train.class_balance=loss"], 1e-3),
])
def test_recipes_train_and_change_the_run(synthetic, plain_history, extra, last_lr):
    history = _fit(synthetic, MEASURED_NOTHING + extra)  # (the recipe's own precision, if any, comes last and wins)
    assert len(history) == 2 and all(np.isfinite(m["train_loss"]) for m in history)
    assert history[-1]["lr"] == pytest.approx(last_lr, abs=1e-7)
    # the options took effect: the losses differ from the plain recipe's with the same seed
    assert [m["train_loss"] for m in history] != [m["train_loss"] for m in plain_history]


def test_cosine_anneals_to_zero_and_step_decays(synthetic):
    assert _fit(synthetic, ["train.schedule=cosine"])[-1]["lr"] == pytest.approx(0.0, abs=1e-9)
    step = _fit(synthetic, ["train.schedule=step", "train.step_size=1", "train.gamma=0.5"])
    assert step[0]["lr"] == pytest.approx(5e-4) and step[1]["lr"] == pytest.approx(2.5e-4)


class FakeClock:
    """perf_counter that moves only when an epoch ends: every epoch takes `epoch_s` seconds."""

    def __init__(self, epoch_s):
        self.now, self.epoch_s = 0.0, epoch_s

    def perf_counter(self):
        return self.now


def _fit_on_fake_clock(synthetic, monkeypatch, schedule: str) -> list[dict]:
    """100 planned epochs of 10 s each under a 45 s budget, on a clock that moves only between epochs."""
    from fer.clock import RunClock

    clock = FakeClock(10.0)
    tr, va = synthetic.select("Training"), synthetic.select("PublicTest")
    run = _run(["train.epochs=100", f"train.schedule={schedule}", "train.time_budget_s=45"])
    trainer = Trainer.from_run(run, tr, va)
    trainer.clock = RunClock(trainer.cfg.time_budget_s, clock=clock.perf_counter)  # the run's one clock
    real_epoch = trainer.train_epoch
    trainer.train_epoch = lambda: (real_epoch(), setattr(clock, "now", clock.now + clock.epoch_s))[0]
    return trainer.fit()


def test_time_budget_stops_before_overrun_and_cosine_anneals_over_it(synthetic, monkeypatch):
    history = _fit_on_fake_clock(synthetic, monkeypatch, "cosine")
    # a fifth epoch would end at 50 s > 45 s, so it never starts
    assert [m["elapsed_s"] for m in history] == [10.0, 20.0, 30.0, 40.0]
    assert [m["run_ends"] for m in history] == ["", "", "", "time budget"]
    lrs = [m["lr"] for m in history]
    assert lrs == sorted(lrs, reverse=True)
    # by epochs alone (100) the lr would still be ~99.9% of 1e-3; by the budget it is at cos(pi * 30/45)
    assert lrs[-1] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 30 / 45)), rel=1e-6)


def test_one_cycle_warms_up_then_anneals_over_the_time_budget(synthetic, monkeypatch):
    assert (one_cycle(0.0), one_cycle(0.3), one_cycle(1.0)) == pytest.approx((1 / 25, 1.0, 1 / 2.5e5))
    lrs = [m["lr"] for m in _fit_on_fake_clock(synthetic, monkeypatch, "onecycle")]
    # by epochs alone (100) the last epoch would still be warming up; by the budget it is past the peak
    assert lrs[0] < lrs[1] < lrs[2] > lrs[3]
    assert lrs[-1] == pytest.approx(1e-3 * one_cycle(30 / 45), rel=1e-6)


def test_early_stopping_stops(synthetic):
    history = _fit(synthetic, ["train.epochs=20", "train.early_stopping=1", "train.lr=1e-12"])
    assert len(history) < 20 and history[-1]["run_ends"] == "early stopping"


def test_dnn_input_must_match_crop():
    with pytest.raises(ConfigError, match="model.input_size"):
        load_run(None, ["model.name=seed_dnn", "train.crop_size=40"])


def test_random_crop_takes_real_windows():
    x = torch.arange(48 * 48, dtype=torch.float32).reshape(1, 1, 48, 48).repeat(8, 1, 1, 1)
    gen = torch.Generator().manual_seed(0)
    crops = random_crop(x, 40, 0, gen)
    assert crops.shape == (8, 1, 40, 40)
    for c in crops:  # each crop is a contiguous window: rows step by 48, columns by 1
        assert torch.all(c[0, 1:, 0] - c[0, :-1, 0] == 48) and torch.all(c[0, 0, 1:] - c[0, 0, :-1] == 1)
    assert len({c[0, 0, 0].item() for c in crops}) > 1


def test_erasing_zeroes_a_rectangle_and_tencrop_gives_ten_views():
    x = torch.ones(16, 1, 48, 48)
    erased = random_erasing(x, 1.0, torch.Generator().manual_seed(0))
    zeros = (erased == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros < 48 * 48 * 0.3).all()
    assert len(eval_views(x, 40, "tencrop")) == 10 and len(eval_views(x, 48, "flip")) == 2


def test_beta_share_follows_beta_and_the_run_generator():
    draw = lambda seed: beta_share(0.2, torch.Generator().manual_seed(seed))  # noqa: E731
    assert draw(3) == draw(3) and draw(3) != draw(4)
    gen = torch.Generator().manual_seed(0)
    for alpha, share_extreme in ((0.2, 0.58), (1.0, 0.1)):  # Beta(a, a): mean 1/2; mass near 0 and 1 for a < 1
        lam = np.array([beta_share(alpha, gen) for _ in range(4000)])
        assert ((lam >= 0) & (lam <= 1)).all() and abs(lam.mean() - 0.5) < 0.03
        extreme = ((lam < 0.05) | (lam > 0.95)).mean()  # Beta(0.2, 0.2): 0.58 (scipy's cdf); Beta(1, 1): 0.10
        assert abs(extreme - share_extreme) < 0.04


def test_mixup_blends_each_image_with_one_other_of_the_batch():
    x = torch.arange(8, dtype=torch.float32).reshape(8, 1, 1, 1).expand(8, 1, 4, 4)
    mixed, perm, lam = mixup(x, 0.4, torch.Generator().manual_seed(1))
    assert sorted(perm.tolist()) == list(range(8)) and 0 < lam < 1
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[perm])


def test_shift_views_move_the_image_and_fill_with_zeros():
    x = torch.zeros(1, 1, 48, 48)
    x[0, 0, 10, 20] = 1.0
    views = eval_views(x, 48, "shifts")
    assert len(views) == 10 and all(v.shape == x.shape for v in views)
    peaks = {tuple(int(i) for i in (v[0, 0] == 1).nonzero()[0]) for v in views[:5]}
    assert peaks == {(10, 20), (12, 20), (8, 20), (10, 22), (10, 18)}
    edge = torch.ones(1, 1, 48, 48)
    assert (eval_views(edge, 48, "shifts")[1][0, 0, :2] == 0).all()  # shifted down: zeros come in at the top


def test_balanced_validation_saves_the_tau_it_scored_with(synthetic):
    from fer.checkpoint import Checkpoint
    from fer.evaluate import predict_checkpoint

    tr, va = synthetic.select("Training"), synthetic.select("PublicTest")
    trainer = Trainer.from_run(_run(["train.balance_within=0.05", "train.monitor=val_macro_f1"]), tr, va)
    history = trainer.fit()
    assert all(0.0 <= m["logit_adjust"] <= 1.0 for m in history)
    ckpt = trainer.checkpoint()
    assert ckpt.payload["preprocessing"]["logit_adjust"] == history[-1]["logit_adjust"]
    probs = predict_checkpoint(Checkpoint(ckpt.payload), va.images)  # the model rebuilt from the stored dict
    assert (probs.argmax(1) == va.labels).mean() == pytest.approx(history[-1]["val_acc"])


def test_auto_precision_and_layout_are_recorded_as_they_ran(synthetic, monkeypatch, tmp_path):
    import fer.speed

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))  # a machine that has measured nothing yet
    tr, va = synthetic.select("Training"), synthetic.select("PublicTest")
    rates = {("fp32", False): 100.0, ("fp32", True): 300.0, ("bf16", False): 400.0, ("bf16", True): 900.0}  # AMX
    monkeypatch.setattr(fer.speed.StepTimer, "rate", lambda self, p, cl, give_up_s=0: rates[(p, cl)])
    trainer = Trainer.from_run(_run(), tr, va)
    assert (trainer.cfg.precision, trainer.cfg.channels_last) == ("bf16", True)
    trainer.fit()
    payload = trainer.checkpoint().payload
    assert (payload["train_config"]["precision"], payload["train_config"]["channels_last"]) == ("bf16", True)
    assert payload["speed"]["rates"] == {"fp32, contiguous": 100.0, "fp32, channels_last": 300.0,
                                         "bf16, contiguous": 400.0, "bf16, channels_last": 900.0}
    calls = []
    monkeypatch.setattr(fer.speed.StepTimer, "rate", lambda self, *a, **k: calls.append(a) or 1.0)
    again = Trainer.from_run(_run(), tr, va)
    assert again.speed.how == "cached" and not calls  # the same shape here: nothing timed again


def test_a_nan_loss_ends_the_run_and_is_never_its_best_epoch(synthetic, monkeypatch):
    tr, va = synthetic.select("Training"), synthetic.select("PublicTest")
    trainer = Trainer.from_run(_run(["train.epochs=5"]), tr, va)
    real = trainer.train_epoch
    monkeypatch.setattr(trainer, "train_epoch", lambda: {**real(), **({"train_loss": math.nan}
                                                                       if trainer.epoch == 2 else {})})
    history = trainer.fit()
    assert [m["run_ends"] for m in history] == ["", "", "divergence"]
    assert math.isnan(history[-1]["val_acc"]) and trainer.best["epoch"] in (1, 2)


def test_a_last_batch_of_one_trains_with_batchnorm(tiny_kaggle):
    """33 training images in batches of 32: the last batch of one joins the one before."""
    from fer.data import load_data, train_val

    train, val = train_val(load_data(str(tiny_kaggle)))
    assert len(train) % 32 == 1
    run = load_run(None, ["model.name=dnn", "model.widths=[32]", "model.norm=batch", "train.batch_size=32",
                          "train.epochs=1"])
    (metrics,) = Trainer.from_run(run, train, val).fit()
    assert math.isfinite(metrics["train_loss"])


@pytest.fixture
def tiny_kaggle(write_csv):
    from tests.factories import kaggle_rows

    text, _, _ = kaggle_rows(40, usages=("Training",) * 33 + ("PublicTest",) * 7)
    return write_csv(text)
