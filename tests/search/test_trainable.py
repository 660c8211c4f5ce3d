"""search.trainable: one trial, run here without Tune (its session calls stood in for)."""
import time
from types import SimpleNamespace

import pytest

import search.trainable
from search.trainable import train_fer

TRIAL = {"model": {"name": "cnn", "channels": [4, 8], "kernel_sizes": [3], "convs_per_block": 1, "head": "gap",
                   "head_hidden": [], "pool": "max"},
         "train": {"batch_size": 64, "lr": 0.01, "epochs": 10_000, "precision": "fp32", "channels_last": False}}


@pytest.fixture
def outside_tune(monkeypatch, ray_inits):
    """The trial's Tune and Ray calls answered here: one CPU, no checkpoint to resume, a node id
    (ray_inits: any ray.init fails the test)."""
    context = SimpleNamespace(get_node_id=lambda: "node", get_accelerator_ids=lambda: {"GPU": []})
    monkeypatch.setattr(search.trainable.ray, "get_runtime_context", lambda: context)
    monkeypatch.setattr(search.trainable, "_use_trial_cpus", lambda: 1)
    monkeypatch.setattr(search.trainable.tune, "get_checkpoint", lambda: None)


def test_a_trial_ends_its_last_epoch_by_the_deadline_though_its_reports_take_time(outside_tune, synthetic):
    """Checkpoints and reports happen between epochs, outside the run's clock, and the sweep's
    wall-clock deadline counts them: here each report takes 0.3 s, ten times a tiny epoch. The
    trial asks the deadline before each next epoch, so it ends by its own time budget just before
    it, instead of running its clock's budget of epochs on well past it (Tune would stop it
    there, mid-epoch)."""
    ended = []

    def slow_report(metrics, checkpoint=None):
        ended.append((time.time(), metrics["run_ends"]))
        time.sleep(0.3)  # a checkpoint persisted to slow storage

    deadline = time.time() + 5.0  # (a first epoch, cold, can take 2 s)
    train_fer(TRIAL, synthetic, deadline=deadline, report=slow_report)
    assert len(ended) >= 2 and ended[-1][1] == "time budget"
    assert ended[-1][0] <= deadline + 0.3 + 0.5  # at most the one report after the last decision, and some slack
    assert all(why == "" for _, why in ended[:-1])
