"""What is left on the table: fer's training throughput against the machine's FLOP rate.

For each model: training FLOPs per image (forward + backward, counted by
torch.utils.flop_counter on one batch), images/s in fer's Trainer in fp32 and bf16
autocast, and the share of the machine's dense-matmul rate (a 2048^3 matmul at the
same precision and thread count) that this throughput reaches.

    python -m benchmarks.flop_rate [--n 2048]
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import cli, header, parser
from fer.config import load_run
from fer.data import SyntheticSpec, make_synthetic, train_val
from fer.models import model_from_spec
from fer.train import Trainer

MODELS = {  # name: (overrides, training crop)
    "seed_cnn": (["model.name=seed_cnn", "train.batch_size=128", "train.crop_pad=4"], 48),
    "vgg_cnn": (["model.name=vgg_cnn", "train.batch_size=64", "train.crop_size=40", "train.optimizer=sgd"], 40),
    "dnn 512-256": (["model.name=dnn", "model.widths=[512,256]", "model.norm=batch", "train.batch_size=256"], 48),
}


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(n, n, dtype=dtype)
    a @ a
    t = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def train_flops_per_image(overrides: list[str], crop: int) -> float:
    run = load_run(None, overrides)
    model = model_from_spec(run["model"])
    x, y = torch.randn(16, 1, crop, crop), torch.randint(0, 7, (16,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / 16


def images_per_s(faces, overrides: list[str], precision: str) -> float:
    """Best training epoch of three in fer's loop (augmentation and all)."""
    tr, va = train_val(faces)
    extra = ["train.epochs=3", "train.flip=true", f"train.precision={precision}"]
    if "vgg" in overrides[0] or "seed_cnn" in overrides[0]:
        extra.append("train.channels_last=true")
    history = Trainer.from_run(load_run(None, overrides + extra), tr, va.subset(slice(0, 64))).fit()
    return max(m["images_per_s"] for m in history)


def main() -> None:
    p = parser()
    p.add_argument("--n", type=int, default=2048, help="training images per epoch")
    args = p.parse_args()
    header("FLOP rate")
    faces = make_synthetic(SyntheticSpec(n_per_class=args.n // 7 + 1))
    peak = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    print(f"dense matmul (2048^3): fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s\n")
    print("| model | train GFLOP/image | precision | images/s | GFLOP/s | share of matmul rate | s/epoch (28,709) |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, (overrides, crop) in MODELS.items():
        flops = train_flops_per_image(overrides, crop) / 1e9
        for precision in ("fp32", "bf16"):
            ips = images_per_s(faces, overrides, precision)
            print(f"| {name} | {flops:.3f} | {precision} | {ips:.0f} | {ips * flops:.0f} | "
                  f"{ips * flops / peak[precision]:.0%} | {28709 / ips:.0f} |", flush=True)
    print("\nimages/s: fer's Trainer (uint8 data, on-the-fly crops and flips), best of 3 epochs; "
          "the epoch column excludes validation.\n")


if __name__ == "__main__":
    cli(main)
