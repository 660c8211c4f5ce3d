"""What Ray Tune costs: images/s inside a trial against the same run without Ray, and
the wall time a sweep spends per trial beyond training.

    python benchmarks/sweep_overhead.py [--model small_cnn] [--n 4096] [--epochs 3]
"""
from __future__ import annotations

import tempfile
import time

import numpy as np
import ray

from benchmarks.common import cli, header, parser
from fer.config import load_run
from fer.data import SyntheticSpec, make_synthetic, train_val
from fer.train import Trainer
from search.space import SearchSpace
from search.sweep import run_sweep
from search.trainable import train_fer


def space(model: str, epochs: int, n: int, conc: int, cpus: float, lr=None) -> SearchSpace:
    train = {"batch_size": 128, "lr": lr or {"loguniform": [1e-3, 1e-2]}}
    return SearchSpace({"family": "cnn", "model": {"name": model}, "train": train,
                        "settings": {"num_samples": n, "max_epochs": epochs, "max_concurrent": conc,
                                     "cpus_per_trial": cpus, "scheduler": "fifo"}}, "benchmark")


def main() -> None:
    p = parser()
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    header("Sweep overhead")
    faces = make_synthetic(SyntheticSpec(n_per_class=args.n // 7 + 1))
    tr, va = train_val(faces)
    run = load_run(None, [f"model.name={args.model}", "train.batch_size=128", f"train.epochs={args.epochs}",
                          "train.lr=0.003"])
    plain = [m["images_per_s"] for m in Trainer.from_run(run, tr, va).fit()][1:]

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    with tempfile.TemporaryDirectory() as d:
        grid = run_sweep(space(args.model, args.epochs, 1, 1, 2, lr=0.003), train_fer, d, "one", faces=faces)
        in_trial = grid[0].metrics_dataframe["images_per_s"].tolist()[1:]
        tiny = faces.subset(np.arange(64))
        timings = {}
        for conc in (1, 2):
            t = time.perf_counter()
            g = run_sweep(space("cnn", 1, 8, conc, 1), train_fer, d, f"tiny{conc}", faces=tiny)
            wall = time.perf_counter() - t
            trained = sum(r.metrics["time_total_s"] for r in g)
            timings[conc] = (wall / 8, (wall * conc - trained) / 8)
    ray.shutdown()
    print(f"| run ({args.model}, batch 128, {len(tr)} images, epochs 2-{args.epochs}) | images/s |\n| --- | --- |")
    print(f"| fer Trainer, no Ray | {np.mean(plain):.0f} |\n| inside a Tune trial | {np.mean(in_trial):.0f} |\n")
    print(f"in-trial / plain = {np.mean(in_trial) / np.mean(plain):.3f}\n")
    print("| 8 near-empty trials (1 epoch, 64 images) | wall s per trial | overhead s per trial |\n| --- | --- | --- |")
    for conc, (per, over) in timings.items():
        print(f"| max_concurrent {conc} | {per:.2f} | {over:.2f} |")
    print("\noverhead = (wall x concurrency - summed trial time_total_s) / trials: scheduling, actor start, "
          "checkpoint persistence and result handling.\n")


if __name__ == "__main__":
    cli(main)
