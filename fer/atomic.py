"""Files that are whole or absent, and caches that heal.

Every file fer writes that a later run reads back (checkpoints, exports, parse caches, the
cost and validation-probability caches beside a checkpoint, speed measurements) goes through
`write_atomic`: a temporary file in the same folder, flushed and fsynced, then renamed over
the final name. A crash, Ctrl-C or full disk leaves the old file or none, never half of one.
`digest` keys a cache by what a file holds, not by its size and modification time, which a
copy, a restore or a coarse clock leave equal for different contents.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def public_mode(path: str | Path) -> None:
    """The permissions a plain open() would have given: mkstemp makes its files owner-only."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call `write(f)` on a temporary binary file beside `path`, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        public_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def digest(path: str | Path, extra: bytes = b"") -> str:
    """A 32-hex-digit hash of a file's bytes (and of `extra`: a code version, the rows used)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    h.update(extra)
    return h.hexdigest()


def discard_corrupt(path: Path, why: object) -> None:
    """A cache entry that cannot be read: one line, and it goes, to be rebuilt by the caller."""
    print(f"fer: cache {path} is unreadable ({why}); rebuilding it", file=sys.stderr, flush=True)
    try:
        path.unlink()
    except OSError:
        pass  # a read-only cache: rebuilt in memory each time


class JsonEntries:
    """Entries by key in one JSON file, the measurement caches' store (fer.speed, fer.packing):
    plain data, so reading it runs nothing; written whole, so concurrent writers at worst redo a
    measurement; a file that cannot be read is said in one line and starts over."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> dict:
        if not self.path.exists():
            return {}
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            discard_corrupt(self.path, e)
            return {}
        return entries if isinstance(entries, dict) else {}

    def put(self, key: str, value) -> None:
        entries = {**self.read(), key: value}
        try:
            write_atomic(self.path, lambda f: f.write(json.dumps(entries, indent=1).encode()))
        except OSError:  # a read-only cache costs a measurement per run, nothing else
            pass
