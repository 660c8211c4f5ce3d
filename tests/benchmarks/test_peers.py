"""benchmarks/peers.py: the comparison's arithmetic, and every system run end to end on tiny data."""
import json
import math

import pytest

from benchmarks.peers import SYSTEMS, Trial, anytime, collect_peer, main, table

TINY_DNN = """family: dnn
settings: {metric: val_acc, cpus_per_trial: 1, max_concurrent: 1, grace_period: 1, grow_trials: false}
model: {widths: {choice: [[32], [64, 32]]}, dropout: {uniform: [0.0, 0.3]}}
train: {batch_size: 64, optimizer: adamw, lr: {loguniform: [1.0e-3, 1.0e-2]}, precision: fp32}
"""


def test_the_selection_at_each_moment_is_the_best_ended_trial_scored_on_its_own_checkpoint():
    trials = {"a": Trial(5.0, 0.4, "a.pt"), "b": Trial(9.0, 0.3, "b.pt"), "c": Trial(12.0, 0.6, "c.pt")}
    public = {"a.pt": 0.41, "b.pt": 0.9, "c.pt": 0.55}
    # b ends with a worse holdout score than a: the selection stays a, whatever b would score on PublicTest
    assert anytime(trials, public.__getitem__) == [(5.0, 0.41), (12.0, 0.55)]


def test_a_peer_log_counts_started_trials_and_only_their_epochs(tmp_path):
    (tmp_path / "log").mkdir()
    rows = [{"trial": "t1", "time": 100.0, "epoch": 0}, {"trial": "t1", "time": 103.0, "epoch": 1, "value": 0.2,
                                                          "wall_s": 2.5},
            {"trial": "t1", "time": 106.0, "epoch": 2, "value": 0.5, "wall_s": 2.5}]
    (tmp_path / "log" / "t1.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    (tmp_path / "log" / "t2.jsonl").write_text(json.dumps({"trial": "t2", "time": 105.0, "epoch": 0}) + "\n")
    started, trials, train_s = collect_peer(tmp_path, t0=90.0, cpus_per_trial=2)
    assert started == 2 and train_s == 10.0  # t2 started and never finished an epoch; 2 CPUs per trial
    assert trials == {"t1": Trial(16.0, 0.5, str(tmp_path / "kept" / "t1.pt"))}


def test_the_table_gives_mean_spread_and_each_seed():
    results = [{"system": "optuna", "seed": s, "public_test": v, "training_share": 0.9, "trials_started": 4}
               for s, v in ((0, 0.5), (1, 0.7))]
    lines = table(results, ["optuna"]).splitlines()
    assert lines[0].startswith("| system | PublicTest at the deadline, mean (sd) | seed 0 | seed 1 |")
    assert lines[2] == f"| optuna | 0.6000 ({math.sqrt(0.02):.4f}) | 0.5000 | 0.7000 | 90% | 4.0 |"


def test_a_seed_whose_system_selected_nothing_is_counted_apart():
    results = [{"system": "ray_tune", "seed": s, "public_test": v, "training_share": 0.0, "trials_started": 2}
               for s, v in ((0, 0.4), (1, math.nan), (2, 0.6))]
    row = table(results, ["ray_tune"]).splitlines()[2]
    sd = math.sqrt(0.02)
    assert row.startswith(f"| ray_tune | 0.5000 ({sd:.4f}), 1 seed(s) with none | 0.4000 | none | 0.6000 |")
    nothing = [{**r, "public_test": math.nan} for r in results]
    assert table(nothing, ["ray_tune"]).splitlines()[2].startswith("| ray_tune | no selection | none | none | none |")


@pytest.mark.slow
def test_every_system_searches_and_is_scored_on_the_tiny_faces(tmp_path, tiny_csv, ray_cluster, capsys):
    """15 s each: beside one busy CPU, a Ray trial's first epoch ended about 11 s after its system's
    launch (beside two busy CPUs neither 15 s nor 20 s was enough: no Ray trial finished an epoch).
    Trials reuse their worker (`grow_trials: false`):
    growing the one trial onto the free CPU would restart it in a new worker, whose start under that
    load ate half of a 20 s budget. (Once, at the suite's start, this project's trial finished no
    epoch in 15 s: its plan then built a whole Trainer, 3 s of the budget, which it no longer does.)"""
    space = tmp_path / "tiny_dnn.yaml"
    space.write_text(TINY_DNN)
    out, run = tmp_path / "peers", tmp_path / "peers" / "tiny_dnn-15s"
    assert main(["--space", str(space), "--budget", "15", "--seeds", "1", "--data", str(tiny_csv), "--out", str(out),
                 "--address", ray_cluster]) == 0
    printed = capsys.readouterr().out
    for system in SYSTEMS:
        result = json.loads((run / "seed0" / system / "result.json").read_text())
        assert 0.0 <= result["public_test"] <= 1.0 and result["curve"], system
        assert 0.0 < result["training_share"] <= 1.0 and result["trials_started"] >= 1
        assert f"| {system} | " in printed
    assert (run / "anytime.png").stat().st_size > 0
    # a second seed: the seed loop is the same for every system, so one (the one without Ray) runs it
    kept = run / "seed0" / "optuna" / "result.json"
    before = kept.stat().st_mtime_ns
    assert main(["--space", str(space), "--budget", "15", "--seeds", "2", "--data", str(tiny_csv), "--out", str(out),
                 "--systems", "optuna"]) == 0
    printed = capsys.readouterr().out
    assert kept.stat().st_mtime_ns == before  # a result on disk is read, not run again
    second = json.loads((run / "seed1" / "optuna" / "result.json").read_text())
    assert 0.0 <= second["public_test"] <= 1.0 and second["curve"]
    assert 0.0 < second["training_share"] <= 1.0 and second["trials_started"] >= 1
    assert "seed 0 optuna: PublicTest" in printed and "seed 1 optuna: PublicTest" in printed
    assert "| seed 0 | seed 1 |" in printed
