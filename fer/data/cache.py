"""The cache folder (FER_CACHE_DIR, default ~/.cache/fer) and its content-keyed arrays, so a
dataset is parsed once per machine.

What it holds: parsed datasets (`csv-*.npz`), checkpoints' validation probabilities
(`probs-*.npz`, fer.ship.probs), files fetched from storage URIs (`remote/`, by fer.remote),
measurements (`speed.json`, `packing.json`, checkpoints' `cost.json`) and the studies of sweeps
on a storage URI staged on their driver (`remote/studies/`). The first three are copies that can
be made again: they are kept under a size limit (FER_CACHE_MAX_BYTES, default 1 GiB), the least
recently used going first; `fer cache` shows them and `fer cache --clear` removes them.
"""
from __future__ import annotations

import os
import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np

from fer.atomic import discard_corrupt, write_atomic

UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)  # what np.load raises


DEFAULT_MAX_BYTES = 1 << 30
PROBS_PREFIX = "probs-"  # checkpoints' validation probabilities (fer.ship.probs): probs-<key>.npz


def default_cache_dir() -> Path:
    return Path(os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer")


def max_bytes() -> int:
    """The cache's size limit for copies that can be made again (FER_CACHE_MAX_BYTES, bytes)."""
    text = os.environ.get("FER_CACHE_MAX_BYTES", "")
    try:
        return max(0, int(text)) if text else DEFAULT_MAX_BYTES
    except ValueError:
        from fer.errors import ConfigError

        raise ConfigError(f"FER_CACHE_MAX_BYTES: expected a number of bytes, got {text!r}") from None


def entries(root: Path | None = None) -> list[tuple[Path, int, float]]:
    """(entry, bytes, last use) of what may be evicted: each parsed dataset or probability array,
    and each fetched object's folder."""
    root = root or default_cache_dir()
    found = [(p, p.stat().st_size, p.stat().st_mtime) for p in root.glob("*.npz")]
    for folder in (root / "remote").glob("*"):
        if folder.is_dir() and folder.name != "studies":  # a staged study is a sweep's working copy
            files = [f for f in folder.rglob("*") if f.is_file()]
            found.append((folder, sum(f.stat().st_size for f in files),
                          max((f.stat().st_mtime for f in files), default=0.0)))
    return found


def used(path: Path) -> None:
    """Mark an entry as just used (its modification time: access times are often not kept)."""
    try:
        os.utime(path)
    except OSError:
        pass


def evict(keep: Path | None = None, root: Path | None = None) -> list[Path]:
    """Remove the least recently used entries until the evictable total is within max_bytes();
    `keep` (the entry just written) stays. Returns what went."""
    limit, held = max_bytes(), sorted(entries(root), key=lambda e: e[2])
    total, gone = sum(size for _, size, _ in held), []
    for path, size, _ in held:
        if total <= limit:
            break
        if keep is not None and (path == keep or path in keep.parents):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        total -= size
        gone.append(path)
    return gone


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
                arrays = {k: z[k] for k in z.files}
            used(path)
            return arrays
        except UNREADABLE as e:
            discard_corrupt(path, f"{e.__class__.__name__}: {e}")
            return None

    def put(self, key: str, arrays: dict) -> None:
        try:
            path = write_atomic(self.root / f"{key}.npz", lambda f: np.savez(f, **arrays))
        except OSError:
            return  # a read-only or full disk only costs the next load a re-parse
        if self.root == default_cache_dir():
            evict(keep=path)
