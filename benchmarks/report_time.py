"""Wall time of the whole analysis report for one model over 3,589 images with 16
saliency images (FER2013's PublicTest when present, else as many synthetic faces).

    python benchmarks/report_time.py [CHECKPOINT] [--data PATH]
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import SHARED_FER, cli, header, parser
from fer.config import load_run
from fer.data import SyntheticSpec, make_synthetic


def untrained_seed_cnn(out: Path, data: str | None) -> Path:
    """A seed_cnn checkpoint with one short epoch: the timing does not depend on accuracy."""
    from fer.data import load_data, split_for_training
    from fer.train import Trainer

    faces = load_data(data) if data else make_synthetic(SyntheticSpec(n_per_class=513))
    run = load_run(None, ["model.name=seed_cnn", "train.epochs=1", "train.tta=flip"] +
                   ([f"data={data}"] if data else []))
    train, val, info = split_for_training(faces, run["train"])
    trainer = Trainer.from_run(run, train.subset(slice(0, 256)), val)
    trainer.history = [trainer.train_epoch() | trainer.validate() | {"epoch": 1}]
    return trainer.checkpoint(info).save(out / "checkpoint.pt")


def main() -> None:
    p = parser()
    p.add_argument("checkpoint", nargs="?")
    p.add_argument("--data", default=str(SHARED_FER) if SHARED_FER.exists() else None)
    args = p.parse_args()
    header("Report time")
    from analysis.report import make_report

    with tempfile.TemporaryDirectory() as d:
        ckpt = args.checkpoint or untrained_seed_cnn(Path(d), args.data)
        t = time.perf_counter()
        metrics = make_report(str(ckpt), out=Path(d) / "report", images=list(range(16)))
        wall = time.perf_counter() - t
    m = next(iter(metrics["models"].values()))
    print(f"seed_cnn (flip TTA) over {m['n']} images ({m['split']}), 16 saliency images x 4 methods plus the "
          f"randomisation control, 16 activation-maximisation patterns, all figures and report.html: "
          f"**{wall:.1f} s**\n")


if __name__ == "__main__":
    cli(main)
