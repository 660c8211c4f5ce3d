"""What shipping a checkpoint means: its size, its CPU cost (fer.ship.cost: median ms per face at
batch 1 and images/s at batch 256, with its own test-time augmentation) and, unless it trained
on them, its PublicTest accuracy and macro-F1 (with its prior correction, as `fer evaluate`).
PrivateTest is never read.

    python -m benchmarks.ship "best CNN=results/ship/cnn/trial_x/checkpoint_000031" "ensemble=results/ens/checkpoint.pt"
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import SHARED_FER, cli, header, parser
from fer.checkpoint import Checkpoint, checkpoint_file
from fer.data import load_data
from fer.evaluate import classification_metrics, predict_checkpoint
from fer.ship.cost import checkpoint_cost


def ship_row(label: str, path: str, faces) -> dict:
    """One checkpoint's size, cost and (for a model that never saw these faces) scores."""
    file = checkpoint_file(Path(path))
    ckpt = Checkpoint.load(file)
    cost = checkpoint_cost(file)
    row = {"label": label, "params": cost["params"], "mb": file.stat().st_size / 2**20,
           "latency_ms": cost["latency_ms"], "images_per_s": cost["images_per_s"], "tta": cost["tta"],
           "accuracy": None, "macro_f1": None, "seen": ckpt.trained_on}
    if not row["seen"]:
        m = classification_metrics(faces.labels, predict_checkpoint(ckpt, faces.images))
        row.update(accuracy=m["accuracy"], macro_f1=m["macro_f1"])
    return row


def main() -> None:
    p = parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="LABEL=CHECKPOINT (a checkpoint.pt or its folder)")
    p.add_argument("--data", default=str(SHARED_FER))
    args = p.parse_args()
    faces = load_data(args.data).select("PublicTest")
    header("Shipping the best models")
    print("| model | params | file MB | ms/face (batch 1) | faces/s (batch 256) | TTA | PublicTest acc | macro-F1 |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for spec in args.runs:
        label, _, path = spec.rpartition("=")
        r = ship_row(label or path, path, faces)
        scores = (f"{r['accuracy']:.4f} | {r['macro_f1']:.4f}" if r["accuracy"] is not None else
                  f"trained on {' + '.join(r['seen'])} | -")
        print(f"| {r['label']} | {r['params']:,} | {r['mb']:.1f} | {r['latency_ms']:.2f} | {r['images_per_s']:.0f} "
              f"| {r['tta']} | {scores} |", flush=True)


if __name__ == "__main__":
    cli(main)
