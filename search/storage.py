"""The experiments' storage: checked before Ray starts, guarded while sweeps run.

A full disk must not cost an experiment. Three pieces see to it, for a local (or mounted)
storage folder; object stores (s3://, gs://) do not fill up and write objects whole.
- `hold_reserve` keeps RESERVE_BYTES of the storage taken by a file of ours while the sweeps
  run. When the storage fills up, releasing it leaves room for Tune's last save of the
  experiment state, so the sweep can be resumed.
- `StorageWatch` notices the storage failing: free space below two checkpoints, or a trial
  failing while a test write to the storage fails too. It then releases the reserve and
  stops the sweep the way Ctrl-C does (search.interrupt), trials left to be resumed.
- `drop_partial_checkpoints` removes checkpoint folders whose file was provably cut short by
  the full disk (Tune never registered them), before a resume and after a failed sweep; one
  that cannot be read for another reason (a newer format, an I/O error) is kept.
- `experiment_lock` lets one `search run` at a time use an experiment folder.
- `restore_recorded_checkpoints` puts back, before a resume, a checkpoint the experiment
  state still names but Tune had already deleted when the driver died.
- `check_tune_state` finds, before a resume, a state file of Tune's that the driver's death cut
  short, and mends the searcher's or names the file.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import pickle
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from ray.tune import Callback

from fer.atomic import write_atomic
from fer.checkpoint import truncated
from fer.errors import FerError
from search.context import current
from search.interrupt import stop_sweep
from search.uri import TRIAL_PREFIX, is_local

RESERVE_FILE = ".storage-reserve"
LOCK_FILE = ".search-run.lock"
RESERVE_BYTES = 16 << 20  # the experiment state of a few hundred trials, several times over
CHECK_EVERY_S = 2.0  # free-space checks are a statfs call, at most this often


def failure() -> str | None:
    """Why the storage stopped the running experiment's sweep, if it did (search.context)."""
    return current().storage_failure


def holds_experiment(path: str) -> bool:
    """Whether an experiment is already at `path`; a storage that cannot be used is a FerError."""
    if not is_local(path):
        import pyarrow.fs

        try:
            fs, root = pyarrow.fs.FileSystem.from_uri(path)
            return fs.get_file_info(root).type != pyarrow.fs.FileType.NotFound
        except (pyarrow.ArrowException, OSError) as e:
            raise FerError(f"--storage-path {path}: cannot be used ({str(e).splitlines()[0]})") from None
    folder = Path(path)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    try:  # a real write, removed at once: permissions alone say nothing for root or special filesystems
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".write-probe-"))
    except OSError as e:
        raise FerError(f"--storage-path: cannot write under {existing} ({e.strerror or e}), "
                       f"so {folder} cannot hold the experiment") from None
    return folder.is_dir() and any(folder.iterdir())


def allocate(f, size: int) -> None:
    """Take `size` bytes of the disk for the open file `f`: posix_fallocate where the system and
    filesystem have it, else zeros written out. OSError (ENOSPC) when there is no room."""
    try:
        os.posix_fallocate(f.fileno(), 0, size)
        return
    except AttributeError:  # macOS and Windows have no posix_fallocate
        pass
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # a filesystem without it
            raise
    block = bytes(1 << 20)
    for start in range(0, size, len(block)):
        f.write(block[:min(len(block), size - start)])
    f.flush()
    os.fsync(f.fileno())


@contextmanager
def hold_reserve(root: str):
    """Take RESERVE_BYTES in the experiment folder `root` while the sweeps run (local storage only)."""
    if not is_local(root):
        yield
        return
    path = Path(root) / RESERVE_FILE
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # deepest first
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            allocate(f, RESERVE_BYTES)
    except OSError as e:
        path.unlink(missing_ok=True)
        _remove_made(created)
        raise FerError(f"--storage-path {root}: cannot set aside {RESERVE_BYTES >> 20} MiB for the experiment's "
                       f"state ({e.strerror or e}): free some space, then run again") from None
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        _remove_made(created)


def _remove_made(created: list[Path]) -> None:
    """Remove the folders made for the reserve or the lock that nothing else has filled since."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            break  # not empty: a sweep wrote there


def drop_partial_checkpoints(experiment: str) -> list[Path]:
    """Remove checkpoint folders whose checkpoint.pt is missing or provably cut short (fer.checkpoint.
    truncated); returns them. A file that cannot be read (EIO, permissions) is kept, with one line."""
    if not is_local(experiment) or not Path(experiment).is_dir():
        return []
    dropped = []
    for folder in sorted(Path(experiment).glob(f"{TRIAL_PREFIX}*/checkpoint_*")):
        pt = folder / "checkpoint.pt"
        try:
            partial = not any(folder.iterdir()) if not pt.exists() else truncated(pt)
        except OSError as e:
            print(f"search: kept {folder}: cannot tell whether it is whole ({e.strerror or e})", flush=True)
            continue
        if partial:
            shutil.rmtree(folder, ignore_errors=True)
            dropped.append(folder)
    return dropped


@contextmanager
def experiment_lock(root: str):
    """Hold an exclusive lock on the experiment folder `root` while the command runs, so a second
    `search run` of the same name (or a --resume while the first driver lives) is refused, with
    who holds it. A POSIX lock (fcntl.lockf) on root/LOCK_FILE: the kernel (or NFS's lock manager)
    releases it when the process dies, however it dies. Folders made for it, and the file, go when
    it is released. Object stores (s3://) have no locks: nothing is held there."""
    if not is_local(root):
        yield
        return
    path = Path(root) / LOCK_FILE
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # deepest first
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _locked(path, created)
    except OSError as e:
        _remove_made(created)
        raise FerError(f"--storage-path: cannot write under {path.parent} ({e.strerror or e}), so it cannot hold "
                       "the experiment") from None
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # before the close: a waiting opener then finds a fresh file
        os.close(fd)
        _remove_made(created)


def _locked(path: Path, created: list[Path]) -> int:
    """An open descriptor of `path` holding its lock (retried when another release unlinked it)."""
    while True:
        made = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EAGAIN):  # ENOLCK, EOPNOTSUPP...: no lock to be had here
                os.close(fd)
                if made:
                    path.unlink(missing_ok=True)
                _remove_made(created)
                raise FerError(f"{path.parent}: this filesystem gives no locks ({e.strerror or e}: NFS without its "
                               "lock manager, or a FUSE mount), so two runs of one name could not be told apart: "
                               "use a local folder or s3:// for --storage-path") from None
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)  # the holder's file stays: only the folders made here go
            _remove_made(created)
            raise FerError(f"{path.parent}: another `search run` is using this experiment ({holder}): wait for it "
                           "to end, or start another with --name") from None
        if path.exists() and os.stat(path).st_ino == os.fstat(fd).st_ino:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%H:%M:%S')}".encode())
            return fd
        os.close(fd)  # locked a file a releasing run had just unlinked: lock the new one


def restore_recorded_checkpoints(experiment: str) -> list[str]:
    """Tune deletes a superseded checkpoint as soon as a newer one is reported, but records the
    newer one only at its next experiment snapshot (ray-project/ray#27790). A driver killed in
    between leaves an unfinished trial whose recorded checkpoint is gone, and resuming it fails
    every retry. Such a trial gets its newest checkpoint kept (on disk or at the storage URI)
    copied to the recorded path: later training than the one recorded, so nothing is lost.
    Returns the trials mended.

    For --resume only: it reads Tune's pickled trial state, as Tune's restore itself does, so it
    trusts the experiment folder (docs/trust.md). No reading command calls it."""
    if is_local(experiment) and not Path(experiment).is_dir():
        return []
    import pyarrow.fs as pafs
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(experiment)  # a folder or a storage URI: each checkpoint knows its filesystem
    mended = []
    for trial in analysis.trials:
        # what Tune resumes from: the latest checkpoint recorded (not the newest of those kept by score)
        recorded = trial.checkpoint if trial.status != "TERMINATED" else None
        if recorded is None:
            continue
        fs, path = recorded.filesystem, recorded.path
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            continue
        siblings = fs.get_file_info(pafs.FileSelector(path.rsplit("/", 1)[0]))
        kept = sorted(i.path for i in siblings if i.type == pafs.FileType.Directory
                      and i.base_name.startswith("checkpoint_")
                      and fs.get_file_info(f"{i.path}/checkpoint.pt").type == pafs.FileType.File)
        if kept:
            fs.create_dir(path, recursive=True)
            pafs.copy_files(kept[-1], path, source_filesystem=fs, destination_filesystem=fs)
            mended.append(trial.trial_id)
    return mended


TUNE_STATE = ("experiment_state-*.json", "search_gen_state-*.pkl", "searcher-state-*.pkl")  # Tune reads the newest


def cut_short(path: Path) -> bool:
    """Whether one of Tune's state files is provably cut short, read as data: JSON must parse, and
    a pickle ends with its STOP opcode. Tune writes each in its staging folder and copies it into a
    local experiment folder, and a driver killed mid-copy leaves it empty or without its end."""
    data = path.read_bytes()
    if path.suffix != ".json":
        return not data.endswith(pickle.STOP)
    try:
        json.loads(data)
    except ValueError:
        return True
    return False


def check_tune_state(experiment: str) -> str | None:
    """Before a resume. Tune catches a failure to read its state, then starts the experiment
    again with part of it restored: the trial counter at zero, the concurrency limiter full of
    trials that are gone, so it waits for a trial forever. The searcher's own state cut short is
    replaced by an empty one (OptunaSearch.restore then keeps the searcher as tuner.pkl holds it,
    and the running trials it does not know are adopted from the study, as in StudySearch); the
    run state or the trial counter cut short cannot be rebuilt: FerError naming the file.
    Returns a line saying what was mended, or None."""
    if not is_local(experiment) or not Path(experiment).is_dir():
        return None
    mended = None
    for pattern in TUNE_STATE:
        found = sorted(Path(experiment).glob(pattern))
        if not found or not cut_short(found[-1]):
            continue
        if pattern.startswith("searcher-state"):
            write_atomic(found[-1], lambda f: f.write(pickle.dumps({})))  # restore updates the searcher with nothing
            mended = (f"{found[-1].name} was cut short when the sweep stopped: the searcher resumes as first "
                      "made, and takes up its running trials from the study")
            continue
        raise FerError(f"{found[-1]}: cut short when the sweep stopped, so Tune cannot resume this experiment; "
                       "run the sweep again under another --name")
    return mended


class StorageWatch(Callback):
    """Stops the sweep, resumable, once the local storage folder `root` fills up or fails."""

    def __init__(self, root: str):
        self.root = root
        self.checkpoint_bytes = 1 << 20  # the largest checkpoint seen, at least 1 MiB
        self._checked = 0.0

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        pt = Path(checkpoint.path) / "checkpoint.pt"
        if pt.exists():
            self.checkpoint_bytes = max(self.checkpoint_bytes, pt.stat().st_size)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if time.monotonic() - self._checked < CHECK_EVERY_S:
            return
        self._checked = time.monotonic()
        free = shutil.disk_usage(self.root).free
        if free < 2 * self.checkpoint_bytes:
            self._stop(f"{free / 2**20:.1f} MiB free, less than two checkpoints")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._check_write()

    def on_trial_error(self, iteration, trials, trial, **info):
        self._check_write()

    def _check_write(self) -> None:
        """After a trial failed: does a checkpoint-sized write to the storage still succeed?"""
        try:
            with tempfile.TemporaryFile(dir=self.root) as f:
                allocate(f, 2 * self.checkpoint_bytes)
        except OSError as e:
            self._stop(e.strerror or str(e))

    def _stop(self, why: str) -> None:
        stop_for_storage(self.root, why)


def stop_for_storage(root: str, why: str) -> None:
    """The storage folder `root` failed: say why once, free the reserve for Tune's last save, and
    stop the sweep the way Ctrl-C does (resumable). StorageWatch calls it, and so does the study
    when its database in the experiment folder can no longer be written (search.study)."""
    context = current()
    if context.storage_failure is None:
        context.storage_failure = why
    (Path(root) / RESERVE_FILE).unlink(missing_ok=True)  # room for Tune's last save
    stop_sweep()
