"""Files that are whole or absent, and caches that heal.

Every file fer, search and analysis write (checkpoints, exports, caches, sweep.json, reports,
run files) goes through `replace_with` (and `write_atomic`, `write_text` over it): a temporary
file in the same folder, fsynced, renamed over the final name, the folder fsynced. A crash,
Ctrl-C or full disk leaves the old file or none, never half of one (tests/test_writes.py finds
any other write).
`digest` keys a cache by what a file holds, not by its size and modification time, which a
copy, a restore or a coarse clock leave equal for different contents.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from fer.errors import FerError


def folder_to_write(path: str | Path, flag: str = "--out") -> Path:
    """The folder a command writes into, refused in one line before any work when a file is there
    (mkdir would fail with a traceback, after the work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FerError(f"{flag} {path}: a file, not a folder: name a folder to write into")
    return path


def checkpoint_folder(path: str | Path, overwrite: bool, flag: str = "--out") -> Path:
    """The folder a command writes its checkpoint.pt into: one already there is the user's (an
    earlier ensemble or refit), refused before any work unless `overwrite`."""
    out = folder_to_write(path, flag)
    if (out / "checkpoint.pt").exists() and not overwrite:
        raise FerError(f"{out}: holds a checkpoint (checkpoint.pt): give another {flag}, or --overwrite to replace it")
    return out


def public_mode(path: str | Path) -> None:
    """The permissions a plain open() would have given: mkstemp makes its files owner-only."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def replace_with(path: str | Path, make: Callable[[Path], object], check: Callable[[Path], bool] | None = None,
                 suffix: str = ".tmp") -> bool:
    """The one way fer, search and analysis write a file: `make(tmp)` writes a temporary file
    beside `path` (with `suffix`, for writers that go by it), which is fsynced, then, if `check(tmp)`
    passes (or there is none), renamed over `path`, and the folder fsynced so the rename itself
    survives a crash: True. A failed check, an error or Ctrl-C leaves `path` as it was and no
    temporary file behind: False or the exception."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        make(Path(tmp))
        _fsync(tmp, os.O_RDONLY)
        if check is not None and not check(Path(tmp)):
            return False
        public_mode(tmp)
        os.replace(tmp, path)
        _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def _fsync(path: str | Path, flags: int) -> None:
    try:
        fd = os.open(path, flags)
    except OSError:
        return  # (a folder some systems will not open)
    try:
        os.fsync(fd)
    except OSError:
        pass  # a filesystem without fsync of folders
    finally:
        os.close(fd)


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call `write(f)` on a temporary binary file beside `path`, then rename it to `path` (replace_with)."""
    def make(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)

    replace_with(path, make)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """A text file (UTF-8), written whole (write_atomic)."""
    return write_atomic(path, lambda f: f.write(text.encode()))


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

    @contextlib.contextmanager
    def one_at_a_time(self, key: str) -> Iterator[None]:
        """Hold `key`'s lock for the block, so processes that would measure the same entry at once
        (a sweep's first trials of one model shape) take turns: the later ones find it cached. An
        advisory lock on an empty file beside the cache; where locks cannot be taken, no waiting."""
        locks = self.path.with_name(self.path.name + ".locks")
        try:
            locks.mkdir(parents=True, exist_ok=True)
            fd = os.open(locks / hashlib.sha1(key.encode()).hexdigest()[:16], os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            yield
            return
        try:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # (releases the lock)

    def put(self, key: str, value) -> None:
        entries = {**self.read(), key: value}
        try:
            write_atomic(self.path, lambda f: f.write(json.dumps(entries, indent=1).encode()))
        except OSError:  # a read-only cache costs a measurement per run, nothing else
            pass
