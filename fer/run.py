"""One training run from a resolved config: data -> Trainer -> checkpoint on disk."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from fer.atomic import write_text
from fer.checkpoint import Checkpoint
from fer.data import FaceSet, load_data, split_for_training
from fer.errors import FerError
from fer.train import Trainer


class TrainingDiverged(FerError):
    """The loss went NaN or infinite before any epoch was good enough to keep."""


def train_run(run: dict, out: str | Path, faces: FaceSet | None = None,
              on_epoch: Callable[[dict], None] | None = None,
              on_start: Callable[[Trainer], None] | None = None) -> Checkpoint:
    """Train, keep the best epoch's weights, and write config.yaml, checkpoint.pt and
    metrics.json into `out`. Returns the checkpoint. `on_start(trainer)` runs once the
    trainer has chosen its precision and layout (the CLI prints them and attaches its bar)."""
    faces = faces if faces is not None else load_data(run.get("data"))
    train, val, data = split_for_training(faces, run["train"])
    out = Path(out)
    trainer = Trainer.from_run(run, train, val)
    if on_start:
        on_start(trainer)
    try:
        trainer.fit(on_epoch)
    except KeyboardInterrupt:
        if not trainer.history:
            raise KeyboardInterrupt("no epoch finished, so no checkpoint was written") from None
        kept = _write_best(trainer, run, data, out)  # Ctrl-C keeps the best epoch so far
        raise KeyboardInterrupt(f"kept epoch {kept.best_epoch}, the best of {len(trainer.history)}, "
                                f"in {out / 'checkpoint.pt'}") from None
    if trainer.history[-1]["run_ends"] == "divergence" and trainer.best["state"] is None:
        raise TrainingDiverged(f"training diverged in epoch {trainer.epoch} (training loss "
                               f"{trainer.history[-1]['train_loss']}) before any epoch worth keeping: nothing "
                               f"written to {out}; a lower train.lr usually helps")
    return _write_best(trainer, run, data, out)


def _write_best(trainer: Trainer, run: dict, data: dict, out: Path) -> Checkpoint:
    """The run folder, written only now that it has a checkpoint, each file whole, the checkpoint
    first (a kill between them leaves a checkpoint, which alone rebuilds the run): checkpoint.pt
    of the best epoch, config.yaml (as it ran: no "auto"), metrics.json."""
    trainer.use_best_weights()
    ckpt = trainer.checkpoint(data, metrics=trainer.history[trainer.best["epoch"] - 1])
    ckpt.save(out / "checkpoint.pt")
    write_text(out / "config.yaml", yaml.safe_dump({**run, **trainer.run}, sort_keys=False))
    write_text(out / "metrics.json", json.dumps({"best_epoch": ckpt.best_epoch, **ckpt.metrics}, indent=2))
    return ckpt
