"""A content-keyed cache of parsed arrays, so a dataset is parsed once per machine."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def default_cache_dir() -> Path:
    return Path(os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer")


class ArrayCache:
    """Arrays stored as one uncompressed .npz per key; written atomically, so a crash
    mid-write leaves no entry, and an unreadable entry counts as a miss."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_cache_dir()

    def get(self, key: str) -> dict | None:
        path = self.root / f"{key}.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):
            return None

    def put(self, key: str, arrays: dict) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, self.root / f"{key}.npz")
        except OSError:
            pass  # a read-only or full disk only costs the next load a re-parse
