"""Seconds of one validation pass (PublicTest's 3,589 faces, flip TTA: 7,178 forward passes)
against the evaluation batch size, for the CNN sweep's recipe (vgg_cnn 32-64-128-256, 44x44
crops, bf16, channels_last). Every epoch of every trial pays this, so it decides how much of
an hour goes to judging rather than training.

    python -m benchmarks.eval_batch [--threads 1 2] [--batch-sizes 64 128 256 512] [--repeats 5]

The faces are random uint8 images: only the time matters, and it does not depend on pixels.
"""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import cli, header, median_time, parser
from fer.checkpoint import preprocessing
from fer.evaluate import predict_proba
from fer.models import create_model


def main() -> None:
    p = parser()
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    model = create_model("vgg_cnn", channels=[32, 64, 128, 256], head_dropout=0.3)
    model = model.to(memory_format=torch.channels_last).eval()
    images = np.random.default_rng(0).integers(0, 256, (3589, 48, 48), dtype=np.uint8)
    prep = preprocessing(0.5, 0.25, 44, [1 / 7] * 7)
    header("Validation pass against evaluation batch size")
    print(f"| threads | {' | '.join(f'batch {b} s' for b in args.batch_sizes)} |")
    print(f"| ---: | {' | '.join('---:' for _ in args.batch_sizes)} |")
    for threads in args.threads:
        torch.set_num_threads(threads)
        predict_proba(model, images[:256], prep, "flip", 64, "cpu", "bf16")  # warm oneDNN's kernels
        row = [median_time(lambda b=b: predict_proba(model, images, prep, "flip", b, "cpu", "bf16"), args.repeats)
               for b in args.batch_sizes]
        print(f"| {threads} | {' | '.join(f'{s:.2f}' for s in row)} |", flush=True)
    print(f"\nmedian of {args.repeats} passes each")


if __name__ == "__main__":
    cli(main)
