"""benchmarks/gpu_check.py, the one script run on a lent GPU machine: its logic, on the CPU."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gpu_check import REPO, gpu_recipe, gpus_per_trial
from fer.config import resolve_run


@pytest.mark.parametrize("tiny", [False, True])
def test_the_gpu_recipe_is_the_spaces_first_warm_start_point(tiny):
    recipe = gpu_recipe(REPO / "configs" / "cnn_gpu.yaml", tiny)
    run = resolve_run(recipe)
    assert recipe["model"]["name"] == "vgg_cnn"
    assert run["model"]["channels"] == ([8, 16, 32, 64] if tiny else [64, 128, 256, 512])
    assert run["train"]["lr"] == 0.01 and run["train"]["crop_size"] == 40  # from warm_start
    assert run["train"]["tta"] == "tencrop" and run["train"]["nesterov"] is True  # the space's fixed values


def test_gpus_per_trial_follows_the_sweeps_packing_rule():
    rows = [{"processes": 1, "aggregate_images_per_s": 1000}, {"processes": 2, "aggregate_images_per_s": 1900},
            {"processes": 4, "aggregate_images_per_s": 2100}, {"processes": 8, "aggregate_images_per_s": 2200},
            {"processes": 16, "error": "out of memory"}]
    assert gpus_per_trial(rows) == 0.25  # 8 would train more in all, at 275 images/s each: under half of 1000
    assert gpus_per_trial([{"processes": 1, "error": "x"}]) is None


def test_without_cuda_it_says_so_in_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "benchmarks.gpu_check: error: --device cuda: no CUDA device here (use --device cpu --tiny to check the logic) "
        "(see --help)"]


@pytest.mark.slow
def test_cpu_tiny_runs_every_check_and_writes_every_figure(tmp_path):
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--tiny", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(Path(out).read_text())
    assert [r["name"] for r in report["train"]] == ["seed_cnn", "cnn_gpu_warm_start"]
    for r in report["train"]:
        assert r["ok"] and r["acc_cpu"] == r["acc_device"] and r["fp32_max_abs_diff"] < 1e-5  # both on the CPU here
        assert 0 <= r["val_acc_recorded"] <= 1 and r["split"] == "PublicTest"
    assert [r["batch_size"] for r in report["throughput"]] == [64, 128]
    assert all(r["resident_images_per_s"] > 0 and r["dataloader_images_per_s"] > 0 for r in report["throughput"])
    assert [r["processes"] for r in report["packing"]] == [1, 2]
    assert all(len(r["per_process_images_per_s"]) == r["processes"] for r in report["packing"])
    assert report["suggested_gpus_per_trial"] in (1.0, 0.5)
    assert "| seed_cnn (seed_cnn) |" in done.stdout and "suggested gpus_per_trial" in done.stdout
