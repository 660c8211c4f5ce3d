"""Training images/s of seed_cnn in fer's loop against a bare PyTorch loop
(same model, batch size, optimiser and threads; no augmentation).

    python benchmarks/train_throughput.py [--n 4096] [--batch-size 128] [--model seed_cnn]
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import cli, header, parser
from fer.config import load_run
from fer.data import SyntheticSpec, make_synthetic
from fer.models import create_model
from fer.train import Trainer


def bare_loop(images: np.ndarray, labels: np.ndarray, name: str, batch_size: int, epochs: int) -> float:
    torch.manual_seed(0)
    model = create_model(name).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = (torch.as_tensor(images).unsqueeze(1).float() / 255.0 - 0.5) / 0.25
    y = torch.as_tensor(labels)
    best = 0.0
    for _ in range(epochs):
        t = time.perf_counter()
        for idx in torch.randperm(len(y)).split(batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        best = max(best, len(y) / (time.perf_counter() - t))
    return best


def fer_loop(faces, name: str, batch_size: int, epochs: int) -> float:
    run = load_run(None, [f"model.name={name}", f"train.batch_size={batch_size}", f"train.epochs={epochs}"])
    trainer = Trainer.from_run(run, faces, faces.subset(np.arange(8)))
    return max(trainer.train_epoch()["images_per_s"] for _ in range(epochs))


def main() -> None:
    p = parser()
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--model", default="seed_cnn")
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()
    header("Training throughput")
    faces = make_synthetic(SyntheticSpec(n_per_class=args.n // 7 + 1)).subset(np.arange(args.n))
    bare = bare_loop(faces.images, faces.labels, args.model, args.batch_size, args.epochs)
    ours = fer_loop(faces, args.model, args.batch_size, args.epochs)
    print(f"| loop | images/s ({args.model}, batch {args.batch_size}, {args.n} images, best of {args.epochs} epochs) |")
    print("| --- | --- |")
    print(f"| bare PyTorch loop | {bare:.0f} |\n| fer Trainer | {ours:.0f} |\n")
    print(f"fer / bare = {ours / bare:.3f}\n")


if __name__ == "__main__":
    cli(main)
