"""Pareto marking, cost measurement and its cache, and `search best` within limits."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import fer.ship.cost
import search.ship.pareto
from fer.checkpoint import load_checkpoint
from search.ship.pareto import best_within, measured_trials, pareto_mask
from tests.factories import tiny_sweep

REPO = Path(__file__).resolve().parents[3]


def test_pareto_marks_the_points_nothing_beats_on_both():
    values = [0.60, 0.65, 0.65, 0.70, 0.55, 0.70]
    costs = [100, 200, 150, 400, 50, 500]
    # 0.65@200 is beaten by 0.65@150, 0.70@500 by 0.70@400; the rest trade value for cost
    assert pareto_mask(values, costs) == [True, False, True, True, True, False]
    assert pareto_mask([0.5, 0.5], [10, 10]) == [True, True]  # equal points do not dominate each other


@pytest.fixture
def sweep_of(monkeypatch):
    """A fake results folder: trials (family, value, params, latency) without Ray or checkpoints."""
    def make(trials):
        table = pd.DataFrame([{"family": f, "trial_id": f"t{i}", "metric": "val_acc", "val_acc": v, "num_params": p,
                               "checkpoint": f"/ckpt/t{i}"} for i, (f, v, p, _) in enumerate(trials)])
        costs = {f"/ckpt/t{i}": {"params": p, "latency_ms": ms, "images_per_s": 1000 / ms, "tta": "none"}
                 for i, (_, _, p, ms) in enumerate(trials)}
        monkeypatch.setattr(search.ship.pareto, "trials_table", lambda root: table)
        monkeypatch.setattr(fer.ship.cost, "checkpoint_cost", lambda path: costs[path])
    return make


def test_measured_trials_mark_both_fronts(sweep_of):
    sweep_of([("cnn", 0.70, 1_000_000, 5.0), ("cnn", 0.66, 200_000, 6.0), ("dnn", 0.40, 1_000_000, 0.5)])
    table = measured_trials("results/x")
    assert table["trial_id"].tolist() == ["t0", "t1", "t2"]  # best first
    assert table["pareto"].tolist() == ["params latency", "params", "latency"]
    assert measured_trials("results/x", "dnn")["trial_id"].tolist() == ["t2"]


def test_the_int8_front_counts_only_exports_that_pass_their_gate(sweep_of, monkeypatch):
    sweep_of([("cnn", 0.70, 1_000_000, 5.0), ("cnn", 0.66, 200_000, 6.0), ("dnn", 0.40, 1_000_000, 0.5)])
    int8 = {"/ckpt/t0": (2.0, False), "/ckpt/t1": (3.0, True), "/ckpt/t2": (0.2, True)}
    monkeypatch.setattr(fer.ship.cost, "int8_cost", lambda path: {
        "int8_latency_ms": int8[path][0], "int8_images_per_s": 1000 / int8[path][0], "int8_agreement": 0.995,
        "int8_passed": int8[path][1]})
    table = measured_trials("results/x", int8=True)
    assert table["pareto"].tolist() == ["params latency", "params int8", "latency int8"]  # t0's int8 failed
    assert table["int8_passed"].tolist() == [False, True, True] and "int8_latency_ms" in table


@pytest.mark.slow  # an int8 export, quantized and gated
def test_int8_cost_is_measured_once_per_checkpoint(tmp_path, synthetic, monkeypatch):
    from fer.config import load_run
    from fer.data import train_val
    from fer.train import Trainer

    trainer = Trainer.from_run(load_run(None, ["model.name=seed_dnn", "train.epochs=1"]), *train_val(synthetic))
    trainer.fit()
    path = trainer.checkpoint({"source": "synthetic"}).save(tmp_path / "checkpoint.pt")
    cost = fer.ship.cost.int8_cost(path)
    assert cost["int8_latency_ms"] > 0 and 0 <= cost["int8_agreement"] <= 1 and isinstance(cost["int8_passed"], bool)
    torch_cost = fer.ship.cost.checkpoint_cost(path)  # the same cost.json holds both
    monkeypatch.setattr(fer.ship.cost, "_measure_int8", lambda *a: pytest.fail("measured again"))
    monkeypatch.setattr(fer.ship.cost, "measure_cost", lambda *a: pytest.fail("measured again"))
    assert fer.ship.cost.int8_cost(path) == cost and fer.ship.cost.checkpoint_cost(path) == torch_cost


def test_best_within_honours_the_limits_and_says_when_none_meets_them(sweep_of):
    sweep_of([("cnn", 0.70, 1_000_000, 5.0), ("cnn", 0.66, 200_000, 2.0), ("dnn", 0.40, 900_000, 0.5)])
    picked, none = best_within("results/x", max_params=500_000)
    assert [b["trial_id"] for b in picked] == ["t1"]
    assert none == ["dnn: no trial meets --max-params 500,000 (the smallest has 900,000 parameters)"]
    picked, none = best_within("results/x", max_latency_ms=3.0)
    assert [b["trial_id"] for b in picked] == ["t1", "t2"] and not none
    picked, none = best_within("results/x", max_params=100, max_latency_ms=0.1)
    assert not picked and len(none) == 2 and "the fastest 0.50 ms" in none[1]


def test_checkpoint_cost_is_measured_once_per_file_and_machine(tmp_path, synthetic, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    from fer.config import load_run
    from fer.data import train_val
    from fer.train import Trainer

    trainer = Trainer.from_run(load_run(None, ["model.name=seed_dnn", "train.epochs=1", "train.tta=flip"]),
                      *train_val(synthetic))
    trainer.fit()
    path = trainer.checkpoint({"run": 1}).save(tmp_path / "run" / "checkpoint.pt")
    cost = fer.ship.cost.checkpoint_cost(path)
    cache = tmp_path / "cache" / fer.ship.cost.COST_FILE
    assert cost["params"] == 1_276_409 and cost["latency_ms"] > 0 and cost["images_per_s"] > 0
    assert cost["tta"] == "flip" and cache.exists()
    monkeypatch.setattr(fer.ship.cost, "measure_cost", lambda *a: pytest.fail("measured again"))
    assert fer.ship.cost.checkpoint_cost(path.parent) == cost  # the run folder's checkpoint, from the cache
    os.utime(path, (0, 0))  # touched, same bytes: still the cached figures
    assert fer.ship.cost.checkpoint_cost(path) == cost
    stat = path.stat()
    trainer.checkpoint({"run": 2}).save(path)  # other weights' file, same size and time
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    monkeypatch.setattr(fer.ship.cost, "measure_cost", lambda *a: {"params": 1, "latency_ms": 1.0})
    assert fer.ship.cost.checkpoint_cost(path)["params"] == 1  # measured again: the key is the content
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # the run folder as training left it
    assert not list(cache.parent.glob(".cost.json.*"))  # no temporary left
    cache.write_text('{"params": 1, "lat')  # cut short
    monkeypatch.setattr(fer.ship.cost, "measure_cost", lambda *a: {"params": 2, "latency_ms": 1.0})
    assert fer.ship.cost.checkpoint_cost(path)["params"] == 2


@pytest.mark.slow
def test_pick_and_ship_commands_on_a_sweep(tmp_path, tiny_csv, ray_cluster):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    space = tiny_sweep(tmp_path / "space.yaml", n=3, epochs=2, sched="fifo")
    space.write_text(space.read_text().replace("settings: {", "settings: {keep_checkpoints: 2, "))  # both epochs
    run = [sys.executable, "-m", "search", "run", str(space), "--data", str(tiny_csv), "--storage-path",
           str(tmp_path / "results"), "--name", "exp", "--no-report", "--address", ray_cluster]  # the session's Ray
    assert subprocess.run(run, cwd=REPO, env=env, capture_output=True, timeout=400).returncode == 0

    def search(*args):
        return subprocess.run([sys.executable, "-m", "search", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=400)

    done = search("pareto", str(tmp_path / "results" / "exp"), "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 3 and all(r["latency_ms"] > 0 and r["params"] > 0 for r in rows)
    assert any("params" in r["pareto"] for r in rows) and any("latency" in r["pareto"] for r in rows)
    smallest = min(r["params"] for r in rows)
    done = search("best", str(tmp_path / "results" / "exp"), "--max-params", str(smallest), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)[0]["params"] == smallest
    done = search("best", str(tmp_path / "results" / "exp"), "--max-params", "10")
    assert done.returncode == 1 and done.stderr.startswith("search: cnn: no trial meets --max-params 10 ")
    done = search("ensemble", str(tmp_path / "results" / "exp"), "--size", "4", "--json")
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["candidates"] == 3 and sum(m["weight"] for m in made["members"]) == pytest.approx(1.0)
    assert made["scores"]["accuracy"]["ensemble"] >= made["scores"]["accuracy"]["best_member"]  # greedy starts there
    assert load_checkpoint(made["out"])["model"]["name"] == "ensemble"
    held = made["held_out"]  # chosen on one half of the split, scored on the other
    assert held["halves"] == 20 and 0 <= held["ahead"] <= 20 and 0 <= held["ensemble"] <= 1
    done = search("ensemble", str(tmp_path / "results" / "exp"), "--size", "4", "--snapshots", "--json",
                  "--out", str(tmp_path / "snapshots"))
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["candidates"] == 6  # each trial's best epoch, then its other one
    assert made["scores"]["accuracy"]["ensemble"] >= made["scores"]["accuracy"]["best_member"]
    done = search("refit", str(tmp_path / "results" / "exp"), "--out", str(tmp_path / "refit"))
    assert done.returncode == 0, done.stderr
    assert "trained again on every row but PrivateTest" in done.stdout and "score it on PrivateTest" in done.stdout
    refitted = load_checkpoint(tmp_path / "refit")
    assert refitted["data"]["trained_on"] == ["Training", "PublicTest"]
    assert refitted["model"] == load_checkpoint(json.loads(search("best", str(tmp_path / "results"),
                                                                  "--json").stdout)[0]["checkpoint"])["model"]
