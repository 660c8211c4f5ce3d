"""A storage that fills up mid-sweep: the sweep stops with one line, nothing is half-written,
and --resume completes it once there is space again. Needs root to mount a small tmpfs."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fer.checkpoint import load_checkpoint
from fer.errors import FerError
from search.results import trial_histories, trials_table
from search.storage import RESERVE_FILE, check_tune_state, drop_partial_checkpoints
from tests.factories import tiny_sweep

REPO = Path(__file__).resolve().parents[2]


def test_drop_partial_checkpoints_removes_only_the_cut_short(tmp_path, synthetic):
    from fer.config import load_run
    from fer.data import train_val
    from fer.train import Trainer

    run = load_run(None, ["model.name=seed_dnn", "train.epochs=1"])
    trainer = Trainer.from_run(run, *train_val(synthetic))
    trainer.fit()
    whole, cut, empty = (tmp_path / "exp" / "trial_a" / f"checkpoint_00000{i}" for i in range(3))
    trainer.checkpoint({}).save(whole / "checkpoint.pt")
    cut.mkdir(parents=True)
    (cut / "checkpoint.pt").write_bytes((whole / "checkpoint.pt").read_bytes()[:5000])
    empty.mkdir()
    assert drop_partial_checkpoints(str(tmp_path / "exp")) == [cut, empty]
    assert whole.exists() and not cut.exists() and not empty.exists()


def test_drop_partial_checkpoints_keeps_what_it_cannot_prove_cut_short(tmp_path, monkeypatch, capsys):
    import torch

    import search.storage

    newer, unreadable = (tmp_path / "exp" / "trial_a" / f"checkpoint_00000{i}" for i in range(2))
    for folder in (newer, unreadable):
        folder.mkdir(parents=True)
        torch.save({"format": "fer-checkpoint", "format_version": 99}, folder / "checkpoint.pt")  # a later fer's
    real = search.storage.truncated

    def eio(path):
        if path.parent == unreadable:
            raise OSError(5, "Input/output error")
        return real(path)
    monkeypatch.setattr(search.storage, "truncated", eio)
    assert drop_partial_checkpoints(str(tmp_path / "exp")) == []
    assert (newer / "checkpoint.pt").exists() and (unreadable / "checkpoint.pt").exists()
    assert f"kept {unreadable}: cannot tell whether it is whole (Input/output error)" in capsys.readouterr().out


def _hold_lock(root: Path) -> subprocess.Popen:
    """Another process holding the experiment's lock, as a running driver does."""
    code = ("import sys, time; from search.storage import experiment_lock\n"
            f"with experiment_lock({str(root)!r}):\n    print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def _tune_state(folder: Path) -> dict[str, Path]:
    """Tune's three state files as a snapshot writes them, an older session's searcher state beside."""
    import pickle

    files = {"run": folder / "experiment_state-2026-01-02_00-00-00.json",
             "counter": folder / "search_gen_state-2026-01-02_00-00-00.pkl",
             "searcher": folder / "searcher-state-2026-01-02_00-00-00.pkl"}
    files["run"].write_text('{"trial_data": [], "runner_data": {}}')
    files["counter"].write_bytes(pickle.dumps({"counter": 4}))
    files["searcher"].write_bytes(pickle.dumps({"linked": {"a": 1}}))
    (folder / "searcher-state-2026-01-01_00-00-00.pkl").write_bytes(b"")  # not the newest: Tune never reads it
    return files


def test_check_tune_state_leaves_a_whole_state_alone(tmp_path):
    files = _tune_state(tmp_path)
    before = {k: f.read_bytes() for k, f in files.items()}
    assert check_tune_state(str(tmp_path)) is None
    assert {k: f.read_bytes() for k, f in files.items()} == before


@pytest.mark.parametrize("cut", [0, 7])
def test_a_searcher_state_cut_short_is_replaced_by_an_empty_one(tmp_path, cut):
    import pickle

    files = _tune_state(tmp_path)
    files["searcher"].write_bytes(files["searcher"].read_bytes()[:cut])
    line = check_tune_state(str(tmp_path))
    assert line.startswith(f"{files['searcher'].name} was cut short when the sweep stopped: the searcher resumes")
    assert pickle.loads(files["searcher"].read_bytes()) == {}  # OptunaSearch.restore: nothing to update
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(f.name for f in files.values()),
                                                                 "searcher-state-2026-01-01_00-00-00.pkl"])


@pytest.mark.parametrize("which", ["run", "counter"])
def test_a_run_state_or_trial_counter_cut_short_is_one_error_naming_it(tmp_path, which):
    files = _tune_state(tmp_path)
    files[which].write_bytes(files[which].read_bytes()[:-3])
    with pytest.raises(FerError, match=f"^{files[which]}: cut short when the sweep stopped, so Tune cannot resume"):
        check_tune_state(str(tmp_path))


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_run_of_a_running_experiment_is_refused(tmp_path, capsys, resume):
    from search.cli import main
    from search.storage import LOCK_FILE, experiment_lock

    holder = _hold_lock(tmp_path / "quickstart")
    try:
        assert main(["run", "--storage-path", str(tmp_path), "--no-report", *(["--resume"] if resume else [])]) == 2
        err = capsys.readouterr().err
        assert "another `search run` is using this experiment (pid" in err and len(err.splitlines()) == 1
        assert sorted(p.name for p in (tmp_path / "quickstart").iterdir()) == [LOCK_FILE]  # the holder's only
    finally:
        holder.kill()  # killed, not ended: the kernel releases its lock; its file stays behind
        holder.wait()
    with experiment_lock(str(tmp_path / "quickstart")):  # the next run takes it
        assert (tmp_path / "quickstart" / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} on ")
    assert list((tmp_path / "quickstart").iterdir()) == []  # released: the lock file is gone


def test_a_filesystem_without_locks_is_told_apart_from_a_busy_experiment(tmp_path, monkeypatch, capsys):
    import errno
    import fcntl

    from search.cli import main

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "lockf", no_locks)
    assert main(["run", "--storage-path", str(tmp_path / "nfs"), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "this filesystem gives no locks (No locks available: NFS without its lock manager" in err
    assert "another `search run`" not in err and len(err.splitlines()) == 1 and not (tmp_path / "nfs").exists()


@pytest.fixture
def small_volume(tmp_path, request):
    """A tmpfs (48 MiB, or the size the test's `size` mark gives) mounted for the test, unmounted after."""
    mount = tmp_path / "volume"
    mount.mkdir()
    size = request.node.get_closest_marker("size")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size.args[0] if size else '48m'}", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.size("8m")
def test_a_storage_without_room_for_the_reserve_is_one_line_before_ray(tmp_path, small_volume, capsys, ray_inits):
    from search.cli import main

    assert main(["run", "--storage-path", str(small_volume / "results"), "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"search: error: --storage-path {small_volume / 'results' / 'quickstart'}: cannot set "
                          "aside 16 MiB") and "\n" not in err, err
    assert not ray_inits and not (small_volume / "results" / "quickstart").exists()


def _fill(volume: Path) -> Path:
    """Write zeros until the volume is full."""
    ballast = volume / "ballast"
    with open(ballast, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    return ballast


@pytest.mark.slow
def test_storage_full_mid_sweep_stops_then_resume_completes(tmp_path, tiny_csv, small_volume, ray_cluster):
    space = tiny_sweep(tmp_path / "space.yaml", n=4, epochs=12, sched="fifo")
    storage = small_volume / "results"
    cmd = [sys.executable, "-m", "search", "run", str(space), "--data", str(tiny_csv), "--storage-path",
           str(storage), "--name", "exp", "--no-report", "--address", ray_cluster]  # (the session's Ray)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    log = open(tmp_path / "first.log", "w+")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and (tmp_path / "first.log").read_text().count(" epoch ") < 4:
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        time.sleep(0.1)
    assert (storage / "exp" / RESERVE_FILE).exists()  # the room kept for the last save
    ballast = _fill(small_volume)
    proc.wait(timeout=300)
    out = (tmp_path / "first.log").read_text()
    assert proc.returncode == 1, out[-3000:]
    assert "Traceback" not in out and "Unhandled error" not in out, out
    line = next(x for x in out.splitlines() if x.startswith("search: the storage"))
    assert str(storage / "exp") in line and line.endswith("--resume"), line
    ballast.unlink()  # space is back
    done = subprocess.run(cmd + ["--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = trials_table(storage / "exp")
    assert len(table) == 4 and set(table["status"]) == {"TERMINATED"}, table
    for pt in (storage / "exp" / "cnn").glob("trial_*/checkpoint_*/checkpoint.pt"):
        load_checkpoint(pt)  # every checkpoint on the storage is whole
    _, histories = trial_histories(storage / "exp" / "cnn")
    for h in histories.values():
        assert h["epoch"].tolist() == list(range(1, 13))  # stopped trials continued where they were
    assert not (storage / "exp" / RESERVE_FILE).exists()


def test_allocate_falls_back_to_writing_where_there_is_no_fallocate(tmp_path, monkeypatch):
    import errno
    import os

    from search.storage import allocate

    def unsupported(fd, offset, size):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    with open(tmp_path / "a", "wb") as f:
        allocate(f, 3 << 20 | 5)
    monkeypatch.delattr(os, "posix_fallocate")  # as on macOS
    with open(tmp_path / "b", "wb") as f:
        allocate(f, 1000)
    assert (tmp_path / "a").stat().st_size == 3 << 20 | 5 and (tmp_path / "b").stat().st_size == 1000
