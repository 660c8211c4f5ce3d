"""Refit: train a chosen checkpoint's config again on every labelled row it may see (Training and
PublicTest; on data without those splits, train and holdout together), for the epochs at which
the chosen run peaked, so the model a user ships has seen about 12% more faces.

No row is left to select on, so the last epoch's weights are kept, and the checkpoint records
the splits it trained on (`data.trained_on`, fer.data.splits): `fer evaluate` refuses to score
it on them, and PrivateTest stays the only honest score. The training loop still validates each
epoch, on a slice of its own training rows: those figures say the loop ran, nothing more (a
`plateau` schedule steps on them, so its drops differ from the chosen run's). For the same
reason the refit keeps the chosen run's temperature (fer.calibration), fitted on the split it
was selected on, rather than fit one on rows it trained on.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from fer.checkpoint import Checkpoint
from fer.config import resolve_run, train_config
from fer.data import FaceSet
from fer.data.splits import data_entry, refit_rows
from fer.errors import CheckpointError
from fer.train import Trainer

LOOP_CHECK_ROWS = 256  # the slice of training rows the loop validates on


def refit_config(ckpt: Checkpoint, n_rows: int) -> dict:
    """The chosen run's config for a refit: its peak epoch count, its time budget scaled by the
    larger set, the prior correction it chose, and nothing that selects on validation."""
    train = dict(ckpt.train_config)
    peak = int(ckpt.best_epoch or len(ckpt.history) or train["epochs"])
    scale = n_rows / max(int(ckpt.data.get("train_n") or n_rows), 1)
    train.update(epochs=peak, early_stopping=0, balance_within=0.0, calibrate=False,
                 logit_adjust=ckpt.logit_adjust, time_budget_s=train_config({"train": train}).time_budget_s * scale)
    return resolve_run({"model": dict(ckpt.spec), "train": train}, source="refit")


def refit(ckpt: Checkpoint, faces: FaceSet, out: str | Path, on_epoch=None) -> Checkpoint:
    """Train the refit and write out/checkpoint.pt (the last epoch's weights); returns it."""
    if ckpt.trained_on:
        raise CheckpointError("this checkpoint is a refit already: refit the run it came from")
    rows, seen = refit_rows(faces)
    run = refit_config(ckpt, len(rows))
    check = rows.subset(np.random.default_rng(0).permutation(len(rows))[:LOOP_CHECK_ROWS])
    trainer = Trainer.from_run(run, rows, check)
    trainer.fit(on_epoch)
    trainer.prep = replace(trainer.prep, temperature=ckpt.temperature)
    trainer.best["epoch"] = trainer.epoch  # the weights kept are the last epoch's
    data = data_entry(faces.source, len(rows), 0, None, trained_on=seen,
                      refit_of={"epochs": run["train"]["epochs"], "val_metrics": ckpt.metrics})
    new = trainer.checkpoint(data, metrics={k: v for k, v in trainer.history[-1].items() if not k.startswith("val_")})
    new.save(Path(out) / "checkpoint.pt")
    return new
