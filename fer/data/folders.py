"""Image folders: ROOT/<split>/<emotion>/*.jpg|png, or ROOT/<emotion>/* without splits.

Any size or colour is converted to 48x48 grayscale, as FER2013's faces are.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fer.data.dataset import CLASSES, FaceSet
from fer.data.splits import SPLITS, canonical_split
from fer.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MAX_PIXELS = 40_000_000  # a 40-megapixel photo reads; a decompression bomb's claimed size does not
LEFT_BEHIND = {"__macosx", "thumbs.db", "desktop.ini"}  # what archivers and file managers add


def is_left_behind(path: Path) -> bool:
    """A file or folder an operating system, archiver or editor leaves beside the data (dot-files
    and dot-folders, __MACOSX/, Thumbs.db): skipped, as torchvision's ImageFolder does."""
    return path.name.startswith(".") or path.name.lower() in LEFT_BEHIND


def read_image(path: str | Path) -> np.ndarray:
    """One image file as (48, 48) uint8 grayscale. The size in its header is checked before any
    pixel is decoded, so a small file claiming billions of pixels is refused, not unpacked."""
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DataError(f"{path}: an image of {im.width}x{im.height} pixels, more than fer reads "
                                f"({MAX_PIXELS:,}): resize it first")
            im = im.convert("L")
            if im.size != (48, 48):
                im = im.resize((48, 48), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: unreadable image ({e.__class__.__name__}: {e})") from None


def _class_index(name: str, where: Path) -> int:
    low = name.lower()
    if low in CLASSES:
        return CLASSES.index(low)
    if low.isdigit() and int(low) < len(CLASSES):
        return int(low)
    raise DataError(f"{where}: folder {name!r} is not an emotion (expected one of {', '.join(CLASSES)} or 0-6)")


def _is_split(name: str) -> bool:
    try:
        canonical_split(name)
        return True
    except DataError:
        return False


def load_folder(root: str) -> FaceSet:
    """Read every image under root; the folder layout says the split and the label."""
    base = Path(root)
    subdirs = sorted(p for p in base.iterdir() if p.is_dir() and not is_left_behind(p))
    if not subdirs:
        raise DataError(f"{root}: no class or split folders inside")
    split_dirs = [p for p in subdirs if _is_split(p.name)]
    groups = [(p, SPLITS.index(canonical_split(p.name))) for p in split_dirs] if split_dirs else [(base, -1)]
    images, labels, split = [], [], []
    for group_dir, split_code in groups:
        for class_dir in sorted(p for p in group_dir.iterdir() if p.is_dir() and not is_left_behind(p)):
            label = _class_index(class_dir.name, class_dir)
            for f in sorted(class_dir.iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES and not is_left_behind(f) and f.is_file():
                    images.append(read_image(f))
                    labels.append(label)
                    split.append(split_code)
    if not images:
        raise DataError(f"{root}: no images found (expected ROOT/<split>/<emotion>/*.jpg or ROOT/<emotion>/*.jpg)")
    return FaceSet(images=np.stack(images), labels=np.array(labels, np.int64),
                   split=np.array(split, np.int8) if split_dirs else None, source=root)
