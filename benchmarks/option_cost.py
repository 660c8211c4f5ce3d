"""What a training option costs an epoch: one run config trained with and without extra
`key=value` overrides, epochs alternating between the two trainers so that a machine whose speed
drifts within a run (a shared host) drifts for both alike; the first epoch of each is warm-up.
With `--compile`, the second trainer's model is also compiled by torch.compile (its compile time
falls in its first epoch, printed apart): whether compiling buys the hour more epochs.

    python -m benchmarks.option_cost --config configs/runs/hour_cnn.yaml train.mixup=0.2
    python -m benchmarks.option_cost --config configs/runs/hour_cnn.yaml --compile
"""
from __future__ import annotations

import statistics
import time

import torch

from benchmarks.common import cli, header, parser
from fer.config import load_run
from fer.data import SyntheticSpec, make_synthetic
from fer.train import Trainer


def main(argv=None) -> None:
    p = parser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="YAML run config (the baseline)")
    p.add_argument("--per-class", type=int, default=1200, help="synthetic faces per class (70% train)")
    p.add_argument("--epochs", type=int, default=4, help="epochs of each, alternating; the first is warm-up")
    p.add_argument("--compile", action="store_true", help="the second trainer's model compiled by torch.compile")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="what the second trainer adds")
    args = p.parse_args(argv)
    if not args.overrides and not args.compile:
        p.error("name what the second trainer adds: key=value overrides, --compile, or both")
    fixed = ["train.time_budget_s=0", "train.epochs=100000"]
    runs = {"without": load_run(args.config, fixed), "with": load_run(args.config, fixed + args.overrides)}
    header("Training epoch with and without " + " ".join(args.overrides + ["torch.compile"] * args.compile), argv)
    faces = make_synthetic(SyntheticSpec(n_per_class=args.per_class, seed=0))
    train, val = faces.select("Training"), faces.select("PublicTest")
    trainers = {name: Trainer.from_run(run, train, val) for name, run in runs.items()}
    if args.compile:  # the optimiser holds the same parameters: only the forward pass is swapped
        trainers["with"].model = torch.compile(trainers["with"].model)
    print(f"{len(train)} training faces; {trainers['without'].speed.describe()}")
    seconds: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(args.epochs):
        for name, trainer in trainers.items():
            t = time.perf_counter()
            trainer.train_epoch()
            seconds[name].append(time.perf_counter() - t)
    medians = {name: statistics.median(s[1:]) for name, s in seconds.items()}
    for name, s in seconds.items():
        print(f"{name:<8} epochs {' '.join(f'{x:.2f}' for x in s)} s; median after warm-up {medians[name]:.2f} s")
    print(f"with / without: {medians['with'] / medians['without']:.3f}")


if __name__ == "__main__":
    cli(main)
