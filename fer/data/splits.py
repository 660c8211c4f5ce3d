"""The one owner of the splits: which rows train, which select, which stay unseen.

FER2013's Usage column names three splits. Training trains; PublicTest selects (epochs,
temperature, trials, ensembles); PrivateTest is read only by a final `fer evaluate`. A source
without Training and PublicTest holds out a stratified, seeded `val_fraction` of everything
that is not PrivateTest. A refit trains on Training and PublicTest together (or train and
holdout), so only PrivateTest scores it. A checkpoint's `data` entry records which of these
it saw (`data_entry`), and every later reader asks this module what that allows.
"""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import numpy as np

from fer.errors import CheckpointError, DataError

if TYPE_CHECKING:
    from fer.data.dataset import FaceSet

SPLITS = ("Training", "PublicTest", "PrivateTest")
SPLIT_HELP = "Training/PublicTest/PrivateTest or train/validation/test"  # every --split option's help
_ALIASES = {
    "training": "Training", "train": "Training",
    "publictest": "PublicTest", "validation": "PublicTest", "val": "PublicTest", "valid": "PublicTest",
    "privatetest": "PrivateTest", "test": "PrivateTest",
}


def canonical_split(name: str) -> str:
    """Map Training/PublicTest/PrivateTest or their aliases train/validation/test to the canonical name."""
    try:
        return _ALIASES[name.lower()]
    except KeyError:
        raise DataError(f"unknown split {name!r}: use one of {', '.join(SPLITS)} "
                        "(or train, validation, test)") from None


def has_kaggle_splits(faces: FaceSet) -> bool:
    return faces.has_split("Training") and faces.has_split("PublicTest")


def _enough(train: FaceSet, name: str) -> FaceSet:
    if len(train) < 2:
        raise DataError(f"{train.source}: {len(train)} {name} image: training needs at least 2")
    return train


def _not_private(faces: FaceSet) -> FaceSet:
    return faces if faces.split is None else faces.subset(np.flatnonzero(faces.split != SPLITS.index("PrivateTest")))


def train_val(faces: FaceSet, val_fraction: float = 0.1, seed: int = 0) -> tuple[FaceSet, FaceSet]:
    """Training and validation sets: Training/PublicTest when the source has them,
    else a stratified, seeded holdout of everything that is not PrivateTest.

    PrivateTest never enters training or selection; only `evaluate` reads it.
    """
    faces.require_labels()
    if has_kaggle_splits(faces):
        return _enough(faces.select("Training"), "Training"), faces.select("PublicTest")
    pool = _not_private(faces)
    if not len(pool):
        raise DataError(f"{faces.source}: only PrivateTest rows, which are kept for the final evaluation: "
                        "training needs Training rows (and PublicTest, or a holdout of them, to select on)")
    n_val = math.ceil(len(pool) * val_fraction)  # as sklearn's train_test_split counts it
    if len(pool) - n_val < 2:
        raise DataError(f"{faces.source}: {len(pool)} image(s) to train and validate on: too few to hold out "
                        f"train.val_fraction {val_fraction} for validation and train on at least 2")
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(pool))
    counts = np.bincount(pool.labels, minlength=7)
    present = int((counts > 0).sum())
    # stratified when every class can be on both sides; sklearn refuses it otherwise
    stratify = pool.labels if counts[counts > 0].min() >= 2 and min(n_val, len(pool) - n_val) >= present else None
    tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=stratify)
    return pool.subset(np.sort(tr)), pool.subset(np.sort(va))


def evaluation_split(faces: FaceSet, asked: str | None) -> str | None:
    """The split `fer evaluate` scores: the one asked for, else PrivateTest (the unseen one), else
    PublicTest; None (every row) for a source without splits."""
    if asked:
        return canonical_split(asked)
    return next((s for s in ("PrivateTest", "PublicTest") if faces.has_split(s)), None)


def split_for_training(faces: FaceSet, train_config: dict) -> tuple[FaceSet, FaceSet, dict]:
    """(train, val, the checkpoint's data entry) as a run's train config (val_fraction, seed) says.
    Called again with a checkpoint's train_config, it gives back the rows that run selected on."""
    train, val = train_val(faces, train_config["val_fraction"], train_config["seed"])
    return train, val, data_entry(faces.source, len(train), len(val),
                                  "PublicTest" if has_kaggle_splits(faces) else "holdout")


def data_entry(source: str, train_n: int, val_n: int, val_split: str | None, **more) -> dict:
    """What a checkpoint records of its rows: the source, counts, the split it selected on
    (PublicTest, holdout, or None for a refit) and, for a refit, `trained_on`."""
    return {"source": source, "train_n": train_n, "val_n": val_n, "val_split": val_split, **more}


def refit_rows(faces: FaceSet) -> tuple[FaceSet, list[str]]:
    """(every row but PrivateTest, the names of the splits they hold): what a refit trains on."""
    if faces.split is None or not has_kaggle_splits(faces):
        return _not_private(faces), ["train", "holdout"]
    keep = np.isin(faces.split, [SPLITS.index("Training"), SPLITS.index("PublicTest")])
    return faces.subset(np.flatnonzero(keep)), ["Training", "PublicTest"]


def refuse_seen_split(data: dict, split: str | None, where: str) -> None:
    """A refit (its data entry has `trained_on`) is scored on PrivateTest only: every other split
    holds rows it trained on."""
    seen = data.get("trained_on")
    if seen and split != "PrivateTest":
        raise CheckpointError(f"{where}: a refit, trained on {' and '.join(seen)}: scoring it on "
                              f"{split or 'all rows'} would score faces it trained on (use --split PrivateTest)")


def selection_caveat(data: dict, source: str, split: str | None) -> str | None:
    """Why a score is optimistic: the rows scored are (or include) those the checkpoint was chosen on."""
    if os.path.abspath(source) != data.get("source") and source != data.get("source"):
        return None
    if split == "PublicTest" and data.get("val_split") == "PublicTest":
        return ("PublicTest is the split this checkpoint was selected on, so this score is optimistic; "
                "PrivateTest is the independent one")
    if split is None or (data.get("val_split") == "holdout" and split != "PrivateTest"):
        return ("these rows include the images this checkpoint was trained and selected on, so this score is "
                "optimistic")
    return None
