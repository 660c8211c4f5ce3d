"""One seed_cnn training epoch with the dataset resident on the device (fer's loop)
against a classic DataLoader pipeline (CPU tensors, worker processes, per-batch copy).

    python benchmarks/device_epoch.py [--data PATH] [--n N] [--workers 4] [--batch-size 128]

Runs on CUDA when present (bf16 autocast in both loops), else on the CPU.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.common import SHARED_FER, cli, header, parser
from fer.config import load_run
from fer.data import SyntheticSpec, load_data, make_synthetic
from fer.evaluate import autocast_for
from fer.models import create_model
from fer.train import Trainer, pick_device


def dataloader_epoch(images, labels, batch_size, workers, device) -> float:
    torch.manual_seed(0)
    model = create_model("seed_cnn").to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ds = TensorDataset(torch.as_tensor(images).unsqueeze(1), torch.as_tensor(labels))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    best = 0.0
    for _ in range(2):  # the first epoch warms up workers and kernels
        t = time.perf_counter()
        for x, y in loader:
            x = (x.to(device, non_blocking=True).float() / 255.0 - 0.5) / 0.25
            x = x.flip(-1) if torch.rand(()) < 0.5 else x
            with autocast_for(device):
                loss = F.cross_entropy(model(x).float(), y.to(device, non_blocking=True))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, len(ds) / (time.perf_counter() - t))
    return best


def resident_epoch(faces, batch_size, device: str = "auto") -> float:
    run = load_run(None, ["model.name=seed_cnn", f"train.batch_size={batch_size}", "train.flip=true",
                          f"train.device={device}"])
    trainer = Trainer.from_run(run, faces, faces.subset(np.arange(8)))
    return max(trainer.train_epoch()["images_per_s"] for _ in range(2))


def main() -> None:
    p = parser()
    p.add_argument("--data", default=str(SHARED_FER) if SHARED_FER.exists() else None)
    p.add_argument("--n", type=int, default=0, help="use only the first N training images (0: all)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args()
    header("Device-resident data against a DataLoader")
    faces = load_data(args.data).select("Training") if args.data else make_synthetic(SyntheticSpec())
    if args.n:
        faces = faces.subset(np.arange(min(args.n, len(faces))))
    device = pick_device()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    resident = resident_epoch(faces, args.batch_size)
    loader = dataloader_epoch(faces.images, faces.labels, args.batch_size, args.workers, device)
    print(f"| seed_cnn epoch on {name}, {len(faces)} images, batch {args.batch_size} | images/s | s/epoch |")
    print("| --- | --- | --- |")
    n = len(faces)
    print(f"| fer: uint8 dataset on the device, batches sliced there | {resident:.0f} | {n / resident:.1f} |")
    print(f"| DataLoader, {args.workers} workers, host-to-device per batch | {loader:.0f} | {n / loader:.1f} |\n")


if __name__ == "__main__":
    cli(main)
