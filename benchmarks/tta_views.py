"""PublicTest accuracy of one checkpoint's weights under each test-time augmentation,
to see what a TTA choice buys without retraining:

    python -m benchmarks.tta_views /tmp/dnn20/dnn20/dnn/trial_x/checkpoint_000099/checkpoint.pt

The same weights, preprocessing and prior correction; only the averaged views change
(tencrop only for nets trained on crops smaller than 48). PrivateTest is never read.
"""
from __future__ import annotations

import time

from benchmarks.common import SHARED_FER, cli, header, parser
from fer.checkpoint import Checkpoint
from fer.data import load_data
from fer.evaluate import classification_metrics, predict_proba


def main() -> None:
    p = parser()
    p.add_argument("checkpoint")
    p.add_argument("--data", default=str(SHARED_FER))
    args = p.parse_args()
    ckpt = Checkpoint.load(args.checkpoint)
    model, prep, cfg = ckpt.model, ckpt.prep, ckpt.train_config
    faces = load_data(args.data).select("PublicTest")
    header(f"TTA views on PublicTest ({len(faces)} images)")
    print(f"checkpoint: {args.checkpoint} (trained with tta={cfg.get('tta')})\n")
    print("| tta | views | accuracy | macro-F1 | seconds |\n| --- | ---: | ---: | ---: | ---: |")
    views = {"none": 1, "flip": 2, "shifts": 10, "tencrop": 10}
    for tta, n in views.items():
        if tta == "tencrop" and prep.crop_size >= 48:
            continue
        t = time.perf_counter()
        probs = predict_proba(model, faces.images, prep, tta, precision=cfg.get("precision", "auto"))
        m = classification_metrics(faces.labels, probs)
        print(f"| {tta} | {n} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {time.perf_counter() - t:.1f} |")


if __name__ == "__main__":
    cli(main)
