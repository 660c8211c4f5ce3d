"""The in-memory face set every loader returns, and how it is split."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from fer.errors import DataError

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SPLITS = ("Training", "PublicTest", "PrivateTest")
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


@dataclass(frozen=True)
class FaceSet:
    """48x48 grayscale faces with optional labels, split tags and decisive-region masks.

    images: (N, 48, 48) uint8. labels: (N,) int64 in 0..6, or None when unlabelled.
    split: (N,) int8 index into SPLITS, or None when the source has no splits.
    masks: (N, 48, 48) bool marking the regions that decide the class (synthetic set only).
    """

    images: np.ndarray
    labels: np.ndarray | None
    split: np.ndarray | None
    source: str
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> FaceSet:
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return replace(self, images=self.images[index], labels=pick(self.labels),
                       split=pick(self.split), masks=pick(self.masks))

    def has_split(self, name: str) -> bool:
        return self.split is not None and bool((self.split == SPLITS.index(canonical_split(name))).any())

    def select(self, name: str | None) -> FaceSet:
        """The rows of one split; None means the whole source."""
        if name is None:
            return self
        canon = canonical_split(name)
        if not self.has_split(canon):
            raise DataError(f"{self.source}: has no {canon} split")
        return self.subset(np.flatnonzero(self.split == SPLITS.index(canon)))

    def require_labels(self) -> np.ndarray:
        if self.labels is None:
            raise DataError(f"{self.source}: has no labels (an id,feature file cannot be trained or evaluated on)")
        return self.labels


def _enough(train: FaceSet, name: str) -> FaceSet:
    if len(train) < 2:
        raise DataError(f"{train.source}: {len(train)} {name} image: training needs at least 2")
    return train


def train_val(faces: FaceSet, val_fraction: float = 0.1, seed: int = 0) -> tuple[FaceSet, FaceSet]:
    """Training and validation sets: Training/PublicTest when the source has them,
    else a stratified, seeded holdout of everything that is not PrivateTest.

    PrivateTest never enters training or selection; only `evaluate` reads it.
    """
    faces.require_labels()
    if faces.has_split("Training") and faces.has_split("PublicTest"):
        return _enough(faces.select("Training"), "Training"), faces.select("PublicTest")
    pool = faces if faces.split is None else faces.subset(np.flatnonzero(faces.split != SPLITS.index("PrivateTest")))
    if not len(pool):
        raise DataError(f"{faces.source}: only PrivateTest rows, which are kept for the final evaluation: "
                        "training needs Training rows (and PublicTest, or a holdout of them, to select on)")
    n_val = math.ceil(len(pool) * val_fraction)  # as sklearn's train_test_split counts it
    if len(pool) - n_val < 2:
        raise DataError(f"{faces.source}: {len(pool)} image(s) to train and validate on: too few to hold out "
                        f"train.val_fraction {val_fraction} for validation and train on at least 2")
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(pool))
    counts = np.bincount(pool.labels, minlength=len(CLASSES))
    present = int((counts > 0).sum())
    # stratified when every class can be on both sides; sklearn refuses it otherwise
    stratify = pool.labels if counts[counts > 0].min() >= 2 and min(n_val, len(pool) - n_val) >= present else None
    tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=stratify)
    return pool.subset(np.sort(tr)), pool.subset(np.sort(va))
