"""The in-memory face set every loader returns (how it is split: fer.data.splits)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fer.data.splits import SPLITS, canonical_split
from fer.errors import DataError

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


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
