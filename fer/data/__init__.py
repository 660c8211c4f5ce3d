"""Every data source a user has, behind one `load_data(path)`.

`None` is the built-in synthetic face set; a directory is an image-folder tree; a
file is a FER2013-style CSV (plain or gzip), its layout told by its header.
"""
from __future__ import annotations

import os
from dataclasses import replace

from fer.data.cache import ArrayCache
from fer.data.csv import load_csv
from fer.data.dataset import CLASSES, FaceSet
from fer.data.folders import load_folder, read_image
from fer.data.splits import SPLITS, canonical_split, split_for_training, train_val
from fer.data.synthetic import SyntheticSpec, cached_synthetic, make_synthetic
from fer.errors import DataError

SYNTHETIC = "synthetic"

__all__ = ["CLASSES", "SPLITS", "FaceSet", "canonical_split", "train_val", "split_for_training", "load_data",
           "read_image", "make_synthetic", "SyntheticSpec", "SYNTHETIC", "DataError", "is_synthetic"]


def is_synthetic(path: str | None) -> bool:
    """Whether a source names the built-in synthetic faces (None or 'synthetic')."""
    return path is None or path == SYNTHETIC


def load_data(path: str | None = None, *, cache: bool = True, seed: int = 0) -> FaceSet:
    """Load a data source; None or 'synthetic' gives the built-in synthetic faces."""
    if is_synthetic(path):
        spec = SyntheticSpec(seed=seed)
        return cached_synthetic(spec, ArrayCache()) if cache else make_synthetic(spec)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        faces = load_folder(path)
    elif os.path.getsize(path) == 0:
        raise DataError(f"{path}: empty file")
    else:
        faces = load_csv(path, ArrayCache() if cache else None)
    # The source is recorded absolute: checkpoints name it, and a sweep's trials run in other folders
    return replace(faces, source=os.path.abspath(path))
