"""A content-keyed cache of parsed arrays, so a dataset is parsed once per machine."""
from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from fer.atomic import discard_corrupt, write_atomic

UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)  # what np.load raises


def default_cache_dir() -> Path:
    return Path(os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer")


class ArrayCache:
    """Arrays stored as one uncompressed .npz per key, written atomically (fer.atomic). The
    caller's key names the content and the code that made it; an entry that cannot be read is
    said in one line, removed and rebuilt, never trusted and never fatal."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_cache_dir()

    def get(self, key: str) -> dict | None:
        path = self.root / f"{key}.npz"
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except UNREADABLE as e:
            discard_corrupt(path, f"{e.__class__.__name__}: {e}")
            return None

    def put(self, key: str, arrays: dict) -> None:
        try:
            write_atomic(self.root / f"{key}.npz", lambda f: np.savez(f, **arrays))
        except OSError:
            pass  # a read-only or full disk only costs the next load a re-parse
