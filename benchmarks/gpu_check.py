"""The CUDA path in one run, on a machine with one GPU and PyTorch alone (no Ray, no Optuna).

    python -m benchmarks.gpu_check [--data PATH] [--out gpu_check.json]   # on the GPU machine, < 8 min
    python -m benchmarks.gpu_check --device cpu --tiny                     # the same logic, seconds

1. `fer train` of seed_cnn and of configs/cnn_gpu.yaml's warm-start recipe for 3 epochs on the
   device (bf16 autocast, the uint8 dataset held on the device); each checkpoint is then
   evaluated by `fer evaluate` with CUDA hidden (it must load on a CPU-only machine) and on the
   device, and both runs' predictions are compared in fp32.
2. Images/s of one training epoch with the dataset resident on the device (fer's loop) against
   a DataLoader pipeline (benchmarks/device_epoch.py), batch 64 to 1024.
3. Packing: 1, 2, 4 and 8 training processes at once on the one GPU, each with
   CUDA_VISIBLE_DEVICES as Ray sets it for fractional GPUs: aggregate images/s and per-process
   memory, and the trials per GPU fer.packing's rule picks from them (as `gpus_per_trial: auto`
   does before a sweep).
Writes every figure to one JSON file and prints a summary table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from benchmarks.common import SHARED_FER, cli, parser, write_kaggle
from benchmarks.device_epoch import dataloader_epoch, resident_epoch
from fer.config import read_yaml, resolve_run
from fer.data import SyntheticSpec, load_data, make_synthetic
from fer.packing import choose_packing
from fer.train import Trainer

REPO = Path(__file__).resolve().parents[1]
RANGES = {"choice", "uniform", "loguniform", "quniform", "randint"}  # a space's searched values
TINY_CHANNELS = [8, 16, 32, 64]  # --tiny: the GPU recipe's VGG, narrow enough for a CPU


def gpu_recipe(space_file: Path, tiny: bool) -> dict:
    """The first warm-start point of a space file over its fixed values, as a run config."""
    space = read_yaml(space_file.read_text())
    point = space["settings"]["warm_start"][0]
    run = {}
    for section in ("model", "train"):
        fixed = {k: v for k, v in space.get(section, {}).items() if not (isinstance(v, dict) and set(v) & RANGES)}
        run[section] = {**fixed, **point.get(section, {})}
    run["train"].pop("when", None)
    return tiny_run(run, TINY_CHANNELS) if tiny else run


def tiny_run(run: dict, channels: list[int] | None = None) -> dict:
    """--tiny: narrower channels, and fp32 contiguous given, not measured (the logic under check
    is the device's against the CPU's; timing four settings of each model would be most of it)."""
    return {**run, "model": {**run["model"], **({"channels": channels} if channels else {})},
            "train": {**run.get("train", {}), "precision": "fp32", "channels_last": False}}


def _env(device: str) -> dict:
    """CUDA_VISIBLE_DEVICES as Ray sets it for a trial on GPU 0 (empty: no GPU)."""
    return {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "0" if device == "cuda" else ""}


def _fer(args: list[str], device: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "fer", *args], cwd=REPO, env=_env(device), capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(f"python -m fer {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    return done


def check_train(name: str, run: dict, data: str | None, device: str, epochs: int, work: Path) -> dict:
    """Train through the CLI on the device; evaluate on a CPU-only process and on the device."""
    from fer.checkpoint import Checkpoint
    from fer.evaluate import predict_proba

    config, out = work / f"{name}.yaml", work / name
    config.write_text(yaml.safe_dump(run))
    t = time.perf_counter()
    _fer(["train", "--config", str(config), "--epochs", str(epochs), "--out", str(out), f"train.device={device}",
          *([f"data={data}"] if data else [])], device)
    train_s = time.perf_counter() - t
    ckpt = str(out / "checkpoint.pt")
    on_cpu = json.loads(_fer(["evaluate", ckpt, "--json"], "cpu").stdout.splitlines()[-1])
    on_device = json.loads(_fer(["evaluate", ckpt, "--json"], device).stdout.splitlines()[-1])
    held = Checkpoint.load(ckpt)
    model = held.model
    faces = load_data(held.source)
    images = faces.select(on_cpu["split"] if on_cpu["split"] != "all" else None).images[:512]
    prep, tta = held.prep, held.tta
    p_cpu = predict_proba(model.cpu(), images, prep, tta, device="cpu", precision="fp32")
    p_dev = predict_proba(model.to(device), images, prep, tta, device=device, precision="fp32")
    agree = float((p_cpu.argmax(1) == p_dev.argmax(1)).mean())
    return {"name": name, "model": run["model"]["name"], "epochs": epochs, "train_s": train_s,
            "val_acc_recorded": held.metrics["val_acc"], "split": on_cpu["split"],
            "acc_cpu": on_cpu["accuracy"], "acc_device": on_device["accuracy"],
            "fp32_max_abs_diff": float(np.abs(p_cpu - p_dev).max()), "fp32_argmax_agreement": agree,
            "ok": agree >= 0.99 and abs(on_cpu["accuracy"] - on_device["accuracy"]) <= 0.01}


def check_throughput(faces, device: str, batch_sizes: list[int], workers: int) -> list[dict]:
    """seed_cnn images/s, best of 2 epochs: resident dataset (fer) against a DataLoader."""
    rows = []
    for bs in batch_sizes:
        resident = resident_epoch(faces, bs, device)
        loader = dataloader_epoch(faces.images, faces.labels, bs, workers, torch.device(device))
        rows.append({"batch_size": bs, "resident_images_per_s": resident, "dataloader_images_per_s": loader})
    return rows


def pack_worker(args) -> None:
    """One of the concurrent processes: train the GPU recipe from `start_at` for `seconds`."""
    faces = _faces(args.data, args.n)
    recipe = gpu_recipe(REPO / "configs" / "cnn_gpu.yaml", args.tiny)
    recipe["train"]["device"] = args.device
    trainer = Trainer.from_run(resolve_run(recipe), faces, faces.subset(np.arange(8)))
    trainer.train_epoch()  # warm-up: kernels, allocator
    late = max(0.0, time.time() - args.start_at)  # > 0: the window opened before this process was ready
    time.sleep(max(0.0, args.start_at - time.time()))
    t0, images = time.perf_counter(), 0
    while time.perf_counter() - t0 < args.seconds:
        trainer.train_epoch()
        images += len(faces)
    cuda = args.device == "cuda"
    print(json.dumps({"images_per_s": images / (time.perf_counter() - t0), "late_s": late,
                      "max_allocated_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0,
                      "max_reserved_mb": torch.cuda.max_memory_reserved() / 2**20 if cuda else 0.0}))


def check_packing(args, counts: list[int], seconds: float, warmup_s: float) -> list[dict]:
    rows = []
    for k in counts:
        start_at = time.time() + warmup_s
        cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--pack-worker", "--device", args.device,
               "--start-at", str(start_at), "--seconds", str(seconds), "--n", str(args.n),
               *(["--tiny"] if args.tiny else []), *(["--data", args.data] if args.data else [])]
        procs = [subprocess.Popen(cmd, cwd=REPO, env=_env(args.device), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(k)]
        outs = [p.communicate() for p in procs]
        failed = [err.strip()[-300:] for p, (_, err) in zip(procs, outs) if p.returncode]
        if failed:
            rows.append({"processes": k, "error": failed[0]})
            continue
        each = [json.loads(out.splitlines()[-1]) for out, _ in outs]
        rows.append({"processes": k, "aggregate_images_per_s": sum(e["images_per_s"] for e in each),
                     "late_s": max(e["late_s"] for e in each),
                     "per_process_images_per_s": [e["images_per_s"] for e in each],
                     "max_reserved_mb": max(e["max_reserved_mb"] for e in each),
                     "max_allocated_mb": max(e["max_allocated_mb"] for e in each)})
    return rows


def gpus_per_trial(packing: list[dict]) -> float | None:
    """1/k GPUs per trial, k by fer.packing.choose_packing (the rule `gpus_per_trial: auto` applies
    in a sweep); None when not even one process ran."""
    rates = {r["processes"]: r.get("aggregate_images_per_s") for r in packing}
    if not rates.get(1):
        return None
    return 1 / choose_packing(rates)


def _faces(data: str | None, n: int):
    faces = load_data(data).select("Training") if data else make_synthetic(SyntheticSpec())
    return faces.subset(np.arange(min(n, len(faces)))) if n else faces


def tiny_csv(path: Path) -> str:
    """--tiny: 140 synthetic faces as a Kaggle-format CSV, half Training, half PublicTest."""
    faces = make_synthetic(SyntheticSpec(n_per_class=20))
    usages = ["Training" if i % 2 else "PublicTest" for i in range(len(faces))]
    return str(write_kaggle(path, faces.images, faces.labels, usages))


def summary(report: dict) -> str:
    lines = [f"## GPU check: {report['device_name']}, torch {report['torch']}, {report['total_s']:.0f}s\n",
             "| training run | epochs | train s | val acc (recorded) | acc CPU | acc device | fp32 argmax agree "
             "| ok |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in report["train"]:
        lines.append(f"| {r['name']} ({r['model']}) | {r['epochs']} | {r['train_s']:.0f} | {r['val_acc_recorded']:.4f}"
                     f" | {r['acc_cpu']:.4f} | {r['acc_device']:.4f} | {r['fp32_argmax_agreement']:.4f} | {r['ok']} |")
    lines += ["", "| batch | resident images/s | DataLoader images/s |", "| ---: | ---: | ---: |"]
    lines += [f"| {r['batch_size']} | {r['resident_images_per_s']:.0f} | {r['dataloader_images_per_s']:.0f} |"
              for r in report["throughput"]]
    lines += ["", "| processes on the GPU | aggregate images/s | max reserved MB per process |",
              "| ---: | ---: | ---: |"]
    for r in report["packing"]:
        lines.append(f"| {r['processes']} | {r['aggregate_images_per_s']:.0f} | {r['max_reserved_mb']:.0f} |"
                     if "error" not in r else f"| {r['processes']} | failed: {r['error']} | |")
    lines.append(f"\nsuggested gpus_per_trial: {report['suggested_gpus_per_trial']}")
    return "\n".join(lines)


def main() -> int:
    p = parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--data", default=str(SHARED_FER) if SHARED_FER.exists() else None)
    p.add_argument("--tiny", action="store_true", help="tiny data, models and windows: checks the logic in seconds")
    p.add_argument("--out", default="gpu_check.json")
    p.add_argument("--n", type=int, default=0, help="training images for throughput and packing (0: 8192, tiny 140)")
    p.add_argument("--pack-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=20.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.n = args.n or (140 if args.tiny else 8192)
    if args.pack_worker:
        pack_worker(args)
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here (use --device cpu --tiny to check the logic)")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        args.data = tiny_csv(Path(work) / "tiny.csv") if args.tiny else args.data
        seed_cnn = read_yaml((REPO / "configs" / "runs" / "seed_cnn.yaml").read_text())
        runs = {"seed_cnn": tiny_run(seed_cnn) if args.tiny else seed_cnn,
                "cnn_gpu_warm_start": gpu_recipe(REPO / "configs" / "cnn_gpu.yaml", args.tiny)}
        train = [check_train(name, run, args.data, args.device, 1 if args.tiny else 3, Path(work))
                 for name, run in runs.items()]
        throughput = check_throughput(_faces(args.data, args.n), args.device,
                                      [64, 128] if args.tiny else [64, 128, 256, 512, 1024], 0 if args.tiny else 4)
        packing = check_packing(args, [1, 2] if args.tiny else [1, 2, 4, 8], seconds=1.0 if args.tiny else 15.0,
                                warmup_s=4.0 if args.tiny else 30.0)
    data = None if args.tiny else args.data
    report = {"device": args.device, "device_name": torch.cuda.get_device_name() if args.device == "cuda" else "CPU",
              "torch": torch.__version__, "python": sys.version.split()[0], "tiny": args.tiny, "data": data,
              "train": train, "throughput": throughput, "packing": packing,
              "suggested_gpus_per_trial": gpus_per_trial(packing), "total_s": time.perf_counter() - t0}
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(summary(report))
    print(f"\nwrote {args.out}")
    return 0 if all(r["ok"] for r in train) and not any("error" in r for r in packing) else 1


if __name__ == "__main__":
    cli(main)
