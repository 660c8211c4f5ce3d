"""Refit: train a chosen checkpoint's config again on every labelled row it may see (Training and
PublicTest; on data without those splits, train and holdout together), for the epochs at which
the chosen run peaked, so the model a user ships has seen about 12% more faces.

No row is left to select on, so the last epoch's weights are kept, and the checkpoint records
the splits it trained on (`data.trained_on`): `fer evaluate` refuses to score it on them, and
PrivateTest stays the only honest score. The training loop still validates each epoch, on a
slice of its own training rows: those figures say the loop ran, nothing more (a `plateau`
schedule steps on them, so its drops differ from the chosen run's). For the same reason the
refit keeps the chosen run's temperature (fer.calibration), fitted on the split it was
selected on, rather than fit one on rows it trained on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fer.checkpoint import save_checkpoint
from fer.config import resolve_run
from fer.data import FaceSet
from fer.data.dataset import SPLITS
from fer.errors import CheckpointError
from fer.train import Trainer

LOOP_CHECK_ROWS = 256  # the slice of training rows the loop validates on


def refuse_seen_split(payload: dict, split: str | None, where: str) -> None:
    """A refit is scored on PrivateTest only: every other split holds rows it trained on."""
    seen = payload.get("data", {}).get("trained_on")
    if seen and split != "PrivateTest":
        raise CheckpointError(f"{where}: a refit, trained on {' and '.join(seen)}: scoring it on "
                              f"{split or 'all rows'} would score faces it trained on (use --split PrivateTest)")


def refit_rows(faces: FaceSet) -> tuple[FaceSet, list[str]]:
    """(every row but PrivateTest, the names of the splits they hold)."""
    if faces.split is None or not (faces.has_split("Training") and faces.has_split("PublicTest")):
        if faces.split is not None:
            faces = faces.subset(np.flatnonzero(faces.split != SPLITS.index("PrivateTest")))
        return faces, ["train", "holdout"]
    keep = np.isin(faces.split, [SPLITS.index("Training"), SPLITS.index("PublicTest")])
    return faces.subset(np.flatnonzero(keep)), ["Training", "PublicTest"]


def refit_config(payload: dict, n_rows: int) -> dict:
    """The chosen run's config for a refit: its peak epoch count, its time budget scaled by the
    larger set, the prior correction it chose, and nothing that selects on validation."""
    train = dict(payload["train_config"])
    peak = int(payload.get("best_epoch") or len(payload.get("history") or []) or train["epochs"])
    scale = n_rows / max(int(payload.get("data", {}).get("train_n") or n_rows), 1)
    train.update(epochs=peak, early_stopping=0, balance_within=0.0, calibrate=False,
                 logit_adjust=float(payload["preprocessing"].get("logit_adjust", 0.0)),
                 time_budget_s=float(train.get("time_budget_s") or 0.0) * scale)
    return resolve_run({"model": dict(payload["model"]), "train": train}, source="refit")


def refit(payload: dict, faces: FaceSet, out: str | Path, on_epoch=None) -> dict:
    """Train the refit and write out/checkpoint.pt (the last epoch's weights); returns its payload."""
    if payload.get("data", {}).get("trained_on"):
        raise CheckpointError("this checkpoint is a refit already: refit the run it came from")
    rows, seen = refit_rows(faces)
    run = refit_config(payload, len(rows))
    check = rows.subset(np.random.default_rng(0).permutation(len(rows))[:LOOP_CHECK_ROWS])
    trainer = Trainer(run, rows, check)
    trainer.fit(on_epoch)
    new = trainer.checkpoint({"source": faces.source, "train_n": len(rows), "val_n": 0, "val_split": None,
                              "trained_on": seen, "refit_of": {"epochs": run["train"]["epochs"],
                                                               "val_metrics": payload.get("metrics", {})}})
    new["metrics"] = {k: v for k, v in trainer.history[-1].items() if not k.startswith("val_")}
    new["preprocessing"]["temperature"] = float(payload["preprocessing"].get("temperature", 1.0))
    new["best_epoch"] = trainer.epoch  # the weights kept are the last epoch's
    save_checkpoint(new, Path(out) / "checkpoint.pt")
    return new
