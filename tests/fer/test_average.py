"""fer.average and `train.ema`: the weights' average, scored beside them, kept when better."""
import re

import pytest
import torch

from fer.average import WeightAverage
from fer.checkpoint import Checkpoint
from fer.config import load_run
from fer.train import Trainer
from tests.factories import TINY_CNN

TIMING = ("epoch_s", "images_per_s", "elapsed_s", "epoch_wall_s", "run_ends")  # (run_ends: 1 epoch planned, then 2)


def test_the_average_moves_towards_the_weights_by_its_decay():
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, decay=0.5)
    start = [p.detach().clone() for p in average.model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update(model)  # step 1: min(0.5, 2/11) = 2/11 of the old average stays
    for a, s, p in zip(average.model.parameters(), start, model.parameters()):
        assert torch.allclose(a, 2 / 11 * s + 9 / 11 * p)
    for _ in range(50):  # past the warm-up, the decay asked for
        average.update(model)
    before = [p.detach().clone() for p in average.model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update(model)
    for a, b, p in zip(average.model.parameters(), before, model.parameters()):
        assert torch.allclose(a, 0.5 * b + 0.5 * p)
    assert not any(p.requires_grad for p in average.model.parameters())


def test_batch_norm_statistics_are_recomputed_over_the_batches_for_the_averaged_weights():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.0))
    average = WeightAverage(model, decay=0.9)
    gen = torch.Generator().manual_seed(0)
    batches = [3 + 2 * torch.randn(8, 1, 10, 10, generator=gen) for _ in range(3)]
    average.recompute_batch_norm(batches)
    conv, norm = average.model[0], average.model[1]
    with torch.no_grad():
        means = torch.stack([conv(x).mean((0, 2, 3)) for x in batches])
    assert torch.allclose(norm.running_mean, means.mean(0), atol=1e-5)  # equal batches: the plain mean
    assert norm.momentum == 0.1 and not average.model.training
    assert torch.equal(model[1].running_mean, torch.zeros(4))  # the trained model's own are untouched


def _trainer(synthetic, *extra):
    run = load_run(None, [*TINY_CNN, "train.ema=0.9", "train.precision=fp32", "train.channels_last=false", *extra])
    return Trainer.from_run(run, synthetic.select("Training"), synthetic.select("PublicTest"))


def test_each_epoch_scores_both_and_keeps_the_better_as_its_checkpoint(synthetic):
    trainer = _trainer(synthetic, "train.epochs=3")
    for m in trainer.epochs():
        raw, ema = m["val_acc_raw"], m["val_acc_ema"]
        assert m["val_acc"] == max(raw, ema) and m["ema_kept"] == float(ema > raw)
        weights = trainer.checkpoint().state_dict
        kept = trainer.average.model if m["ema_kept"] else trainer.model
        assert all(torch.equal(weights[k], v) for k, v in kept.state_dict().items())
    assert any(m["val_acc_raw"] != m["val_acc_ema"] for m in trainer.history)  # two sets of weights were scored


def test_a_resumed_run_trains_on_from_the_weights_and_their_average_not_from_the_kept_copy(synthetic, tmp_path):
    first = _trainer(synthetic, "train.epochs=1")
    first.fit()
    first.kept = first.average.model  # as when the average scored better: the checkpoint's weights are its
    saved = first.checkpoint().save(tmp_path / "c.pt")
    then = _trainer(synthetic, "train.epochs=2")
    then.restore(Checkpoint.load(saved))
    for resumed, original in ((then.model, first.model), (then.average.model, first.average.model)):
        assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), original.state_dict().values()))
    assert then.average.steps == first.average.steps > 0
    assert not all(torch.equal(a, b) for a, b in zip(first.model.parameters(), first.average.model.parameters()))
    assert len(then.fit()) == 2


def test_the_average_leaves_the_runs_random_draws_alone(synthetic):
    """Scoring the average draws nothing from the run's generators: the weights train as without it."""
    run = lambda ema: load_run(None, [*TINY_CNN, f"train.ema={ema}", "train.epochs=2",  # noqa: E731
                                      "train.precision=fp32", "train.channels_last=false", "model.dropout=0.3"])
    losses = [[m["train_loss"] for m in Trainer.from_run(run(ema), synthetic.select("Training"),
                                                          synthetic.select("PublicTest")).fit()] for ema in (0, 0.9)]
    assert losses[0] == losses[1]


def test_ema_is_a_decay_below_one():
    with pytest.raises(Exception, match="ema"):
        load_run(None, [*TINY_CNN, "train.ema=1.0"])


def test_fer_train_says_both_scores_and_which_it_kept(tmp_path, capsys):
    from fer.cli import main

    argv = ["train", "--out", str(tmp_path / "run"), "--epochs", "1", "train.ema=0.99", "model.name=seed_dnn"]
    assert main(argv) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("epoch   1/1"))
    assert re.search(r"acc (\d\.\d{4}) \(weights \d\.\d{4}, average \d\.\d{4}: (weights|average) kept\)", line), line
    payload = Checkpoint.load(tmp_path / "run").history[0]
    kept = "average" if payload["ema_kept"] else "weights"
    assert f"{kept} kept" in line and f"acc {payload['val_acc']:.4f} (" in line
