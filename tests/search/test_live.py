"""search.live: trial heartbeats, the status line and the watchdog, on a fake clock."""
import io
import json
from types import SimpleNamespace

import pytest

import search.live
from search.budget import Budget
from search.context import current
from search.live import Heartbeat, LiveStatus, read_heartbeat
from search.plan import make_plan
from search.settings import Settings

CLOCKED = [search.live]


EMULATED = {"precision": "bf16", "channels_last": True, "images_per_s": 5.0, "how": "measured",
            "rates": {"fp32, contiguous": 180.0, "fp32, channels_last": 190.0, "bf16, channels_last": 5.0},
            "warning": "train.precision: bf16 runs 38.0x slower than fp32 on this CPU (AVX2, no AMX or AVX512-BF16: "
                       "bf16 is emulated); precision: auto would run fp32 at 190 images/s against 5"}


def test_a_heartbeat_writes_the_rate_so_far_at_most_every_few_seconds(tmp_path, clock):
    beat = Heartbeat(tmp_path / "trial_a" / "progress.json", EMULATED, batch_size=64, clock=clock)
    assert read_heartbeat(str(tmp_path / "trial_a"))["batch"] == 0  # written at once: the precision is known
    clock.now += 2.0
    beat(1, 100)  # too soon after the last write
    assert read_heartbeat(str(tmp_path / "trial_a"))["batch"] == 0
    clock.now += 10.0
    beat(10, 100)
    record = read_heartbeat(str(tmp_path / "trial_a"))
    assert (record["epoch"], record["batch"], record["batches"]) == (1, 10, 100)
    assert record["images_per_s"] == pytest.approx(640 / 12.0)
    (tmp_path / "trial_b").mkdir()
    (tmp_path / "trial_b" / "progress.json").write_text("{not json")
    assert read_heartbeat(str(tmp_path / "trial_b")) is None and read_heartbeat(None) is None


def _trial(trial_id, path, status="RUNNING", last_result=None):
    return SimpleNamespace(trial_id=trial_id, path=str(path), status=status, last_result=last_result or {})


def test_the_watchdog_names_a_trial_with_no_epoch_and_its_likely_cause_once(tmp_path, clock):
    budget = Budget(3600, 2, clock=clock)
    current().start_sweep(budget, make_plan(Settings(), budget, epoch_s=148.0, images_per_s=190.0))
    (tmp_path / "trial_a").mkdir()
    (tmp_path / "trial_a" / "progress.json").write_text(json.dumps(
        {"time": 1000.0, "epoch": 1, "batch": 3, "batches": 450, "images_per_s": 5.0, "speed": EMULATED}))
    out = io.StringIO()
    live = LiveStatus("cnn", "val_acc", stream=out)
    slow, fine = _trial("a", tmp_path / "trial_a"), _trial("b", tmp_path / "trial_b", last_result={
        "training_iteration": 1})
    live.on_trial_start(0, [slow, fine], slow)
    live.on_trial_start(0, [slow, fine], fine)
    clock.now += 60 + 2 * 148.0
    live.watch([slow, fine])
    assert out.getvalue() == ""  # not yet: the plan expects several epochs before it says anything
    clock.now += 2 * 148.0
    live.watch([slow, fine])
    live.watch([slow, fine])
    assert out.getvalue() == (
        "[cnn] a has reported no epoch after 11 min (epochs take 148 s here): 5 images/s: "
        f"{EMULATED['warning']}\n")


def test_the_watchdog_blames_a_busy_machine_or_says_what_it_knows(tmp_path, clock):
    budget = Budget(3600, 2, clock=clock)
    current().start_sweep(budget, make_plan(Settings(), budget, epoch_s=10.0, images_per_s=190.0))
    (tmp_path / "trial_a").mkdir()
    fp32 = {**EMULATED, "precision": "fp32", "warning": ""}
    (tmp_path / "trial_a" / "progress.json").write_text(json.dumps({"images_per_s": 20.0, "speed": fp32}))
    out = io.StringIO()
    live = LiveStatus("cnn", "val_acc", stream=out)
    busy, silent = _trial("a", tmp_path / "trial_a"), _trial("c", tmp_path / "trial_c")
    for t in (busy, silent):
        live.on_trial_start(0, [busy, silent], t)
    live.on_trial_result(0, [busy, silent], busy, {"epoch_wall_s": 20.0})  # real epochs: twice the plan's
    clock.now += 100  # 60 s + 3 x 10 s planned, but not 60 s + 3 x 20 s
    live.watch([busy, silent])
    assert out.getvalue() == ""
    clock.now += 100
    live.watch([busy, silent])
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("20 images/s, against 190 measured before the sweep: the machine is busier than it "
                             "was (other processes, or more trials than cores)")
    assert lines[1].endswith("no progress reported yet (its worker may still be starting)")


def test_the_status_line_counts_trials_and_the_budget_so_far(tmp_path, clock):
    budget = Budget(3600, 2, clock=clock)
    current().start_sweep(budget, make_plan(Settings(), Budget(3600)))
    current().endings.update({"c": "finished", "d": "stopped by ASHA (rung 6 min: rank 2 of 2)"})
    live = LiveStatus("cnn", "val_acc")
    beat = Heartbeat(tmp_path / "trial_a" / "progress.json", EMULATED, batch_size=64, clock=clock)
    clock.now += 100
    beat.write(225, 450)  # half an epoch of 64-image batches in 100 s
    trials = [_trial("a", tmp_path / "trial_a"), _trial("b", "", status="PENDING"),
              _trial("c", "", status="TERMINATED"), _trial("d", "", status="TERMINATED")]
    live.on_trial_result(0, trials, trials[0], {"val_acc": 0.61})
    clock.now += 500
    budget.held, budget.training = 1100.0, 1000.0
    assert live.status(trials) == ("1 running, 1 pending, 1 finished, 1 stopped (a epoch 1 50% at 144 images/s); "
                                   "best val_acc 0.6100 (a); 50 min left; CPUs in trials 92% of the time so far")
