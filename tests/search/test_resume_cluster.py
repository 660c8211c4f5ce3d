"""The CLI as a user runs it: killed and resumed, and on a two-node local Ray cluster that loses a node
(tests/search/test_cluster_path.py runs the cluster path with object storage)."""
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from fer.checkpoint import load_checkpoint
from search.results import trial_histories, trials_table
from search.storage import TUNE_STATE, cut_short
from search.study import without_password
from tests.conftest import subprocess_env
from tests.factories import tiny_sweep
from tests.search.conftest import LOST_NODE_PORT, PG_PASSWORD, start_head, stop_cluster

REPO = Path(__file__).resolve().parents[2]
ENDED = re.compile(r"\] (\w+) (?:finished|stopped by|ended by)[^\n]* after \d+ epochs?")  # a trial's last line
pytestmark = pytest.mark.slow


def _search(*args, **kw):
    return [sys.executable, "-m", "search", "run", *map(str, args), "--no-report"]


def _two_ended(log: str, snapshot: list | None) -> bool:
    return len(ENDED.findall(log)) >= 2


def _snapshot(experiment: Path) -> list:
    """Tune's newest experiment snapshot, one dict per trial: its status, id and last result
    (its runtime state merged in); empty while none is whole."""
    states = sorted(experiment.glob("experiment_state-*.json"))
    try:
        data = json.loads(states[-1].read_text())["trial_data"] if states else []
        return [{**json.loads(run), **json.loads(trial)} for trial, run in data]
    except (ValueError, KeyError, IndexError):  # caught mid-write: read it again next time
        return []


def _kill_once_two_trials_ended(cmd: list, log_path: Path, until=_two_ended, **env) -> set:
    """Run the sweep, SIGKILL it and its local Ray once two trials have ended, Tune's snapshot in a
    local folder records them ended (a crash before that snapshot rightly runs them again), and
    `until(log, snapshot)` (the snapshot None where the storage is not local); the ids of the trials that ended."""
    log = open(log_path, "w+")
    proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(**env), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    store = cmd[cmd.index("--storage-path") + 1]  # (an s3:// one is synced by Tune on its own schedule: not read)
    experiment = None if "://" in store else Path(store) / cmd[cmd.index("--name") + 1] / "cnn"

    def ready() -> bool:
        text = log_path.read_text()
        ended = set(ENDED.findall(text))
        snapshot = None if experiment is None else _snapshot(experiment)
        recorded = snapshot is None or ended <= {t["trial_id"] for t in snapshot if t["status"] == "TERMINATED"}
        return len(ended) >= 2 and recorded and until(text, snapshot)

    deadline = time.time() + 240
    while time.time() < deadline and not ready():
        assert proc.poll() is None, log_path.read_text()[-3000:]
        time.sleep(0.5)
    _kill_with_whole_state(proc, experiment)
    proc.wait()
    finished = set(ENDED.findall(log_path.read_text()))
    assert len(finished) >= 2
    return finished


def _running_with_a_checkpoint(log: str, snapshot: list | None) -> bool:
    """An unfinished trial has a checkpoint, and Tune's snapshot records it (a loaded machine can
    write the snapshot well after the trial's log line)."""
    ended = set(ENDED.findall(log))
    logged = set(re.findall(r"\] (\w+) epoch +[12] ", log)) - ended
    return bool(logged) and snapshot is not None and any(
        t["status"] != "TERMINATED" and t["trial_id"] not in ended
        and (t.get("last_result") or {}).get("checkpoint_dir_name") for t in snapshot)


def _stage_deleted_checkpoints(experiment: Path) -> int:
    """Make certain that the kill landed after Tune deleted a superseded checkpoint, before its
    snapshot named the newer one: move each unfinished trial's recorded checkpoint to a later name.
    The number of unfinished trials whose recorded checkpoint is now gone (moved here, or met for real)."""
    from ray.tune import ExperimentAnalysis

    moved = gone = 0
    for trial in ExperimentAnalysis(str(experiment)).trials:
        recorded = trial.checkpoint if trial.status != "TERMINATED" else None  # what Tune resumes from
        if recorded is None:
            continue
        if Path(recorded.path).exists():
            os.rename(recorded.path, Path(recorded.path).parent / "checkpoint_999999")
            moved += 1
        elif any((p / "checkpoint.pt").exists() for p in Path(recorded.path).parent.glob("checkpoint_*")):
            gone += 1  # the race staged here, met for real: the kill came after Tune deleted it
    return moved + gone


def _kill_with_whole_state(proc: subprocess.Popen, experiment: Path | None) -> None:
    """SIGKILL the driver and its local Ray together, as in a crash, at a moment when Tune's state
    files are whole: the group is stopped (SIGSTOP) and let run a moment more while one is being
    copied. (A kill mid-copy leaves a file cut short, which --resume handles by itself:
    search.storage.check_tune_state, tested in tests/search/test_storage.py.)"""
    for _ in range(200):
        os.killpg(proc.pid, signal.SIGSTOP)
        newest = [found[-1] for p in TUNE_STATE if experiment and (found := sorted(experiment.glob(p)))]
        if not any(cut_short(f) for f in newest):
            break
        os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_resume_after_sigkill(tmp_path, tiny_csv, backend, request):
    """SIGKILL the driver and its local Ray once two trials have ended and another is running
    with a checkpoint (each trial runs seconds: time to kill), its recorded checkpoint then
    moved as if Tune had deleted it (_stage_deleted_checkpoints). The resume runs each
    unfinished trial on from its newest checkpoint, reruns no finished one, and keeps one
    study trial per Tune trial."""
    space = tiny_sweep(tmp_path / "space.yaml", n=4, epochs=20, sched="fifo")
    cmd = _search(space, "--data", tiny_csv, "--storage-path", tmp_path / "results", "--name", "exp")
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    secret = {"PGPASSWORD": PG_PASSWORD} if url else {}  # as documented: the password never on the command line
    cmd += ["--optuna-storage", without_password(url)[0]] if url else []
    # a snapshot at every step of Tune's loop, so the state names the running trials' checkpoints
    finished_before = _kill_once_two_trials_ended(cmd, tmp_path / "first.log", _running_with_a_checkpoint,
                                                  TUNE_GLOBAL_CHECKPOINT_S="0", **secret)
    staged = _stage_deleted_checkpoints(tmp_path / "results" / "exp" / "cnn")
    assert staged >= 1, "the kill left no unfinished trial with a checkpoint"
    done = subprocess.run(cmd + ["--resume"], cwd=REPO, env=subprocess_env(**secret), capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{staged} trial(s) resume from their newest checkpoint" in done.stdout
    table = trials_table(tmp_path / "results" / "exp")
    assert len(table) == 4 and set(table["status"]) == {"TERMINATED"}  # the total asked for, all finished
    assert (table["epochs"] == 20).all(), table  # counted by fer's epochs, also where Tune's count lags
    assert finished_before <= set(table["trial_id"])
    rerun = {line.split()[1] for line in done.stdout.splitlines() if " started " in line}
    assert not rerun & finished_before  # no finished trial ran again
    for trial_dir in (tmp_path / "results" / "exp" / "cnn").glob("trial_*"):
        # unfinished ones continued, not restarted: fer's epochs as Tune logged them never go back (a
        # resume from the recorded checkpoint logs its boundary epoch again; one from a newer checkpoint
        # may leave the epoch between them unlogged), and the last checkpoint holds each epoch once
        logged = [r["epoch"] for r in _raw_rows(trial_dir)]
        assert logged == sorted(logged) and logged[-1] == 20, (trial_dir.name, logged)
        last = max((load_checkpoint(p)["history"] for p in trial_dir.glob("checkpoint_*/checkpoint.pt")), key=len)
        assert [m["epoch"] for m in last] == list(range(1, 21)), trial_dir.name
    study = optuna.load_study(study_name="exp/cnn", storage=url or f"sqlite:///{tmp_path}/results/exp/cnn/optuna.db")
    linked = [t.user_attrs["tune_trial_id"] for t in study.trials if t.state != optuna.trial.TrialState.FAIL]
    assert sorted(linked) == sorted(table["trial_id"])  # one study trial per Tune trial: none twice, none lost
    assert {t.state for t in study.trials} <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL}
    # (FAIL: a trial suggested after Tune's last snapshot, never run; no trial is left RUNNING)
    if url:  # the resumed searcher, unpickled, reached the server without its password in any file
        for path in [*(tmp_path / "results").rglob("*"), tmp_path / "first.log"]:
            assert not path.is_file() or PG_PASSWORD.encode() not in path.read_bytes(), path
        assert PG_PASSWORD not in done.stdout + done.stderr


def _raylet(marker: str):
    """(pid, node id) of the raylet whose static resources hold `marker` (read from /proc)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith("raylet") and any(marker in c for c in cmd):
            return int(proc.name), next(c.split("=", 1)[1] for c in cmd if c.startswith("--node_id="))
    raise AssertionError(f"no raylet with resource {marker}")


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it (read from /proc): a node's raylet and the workers it spawned."""
    parents = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        parents[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])  # field 4, after the command's ")"
    found = [pid]
    for p in found:
        found += [child for child, parent in parents.items() if parent == p and child not in found]
    return found


def _raw_rows(trial_dir: Path) -> list[dict]:
    """Tune's result.json of a trial as written, every row (no epoch merged)."""
    import json

    f = trial_dir / "result.json"
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()] if f.exists() else []


def _just_checkpointed(results: Path, node: str, epoch: int) -> Path | None:
    """The folder of a trial on `node` at the known moment: the driver has just logged its epoch
    `epoch` (or a later one) with a checkpoint, so Tune has registered that checkpoint, and no
    result of the next epoch has come: the trial is inside that epoch."""
    for trial_dir in results.glob("trial_*"):
        rows = _raw_rows(trial_dir)
        if rows and rows[-1].get("node_id") == node and rows[-1].get("checkpoint_dir_name") \
                and rows[-1]["training_iteration"] >= epoch and not rows[-1].get("done"):
            return trial_dir
    return None


@pytest.mark.skipif(shutil.which("ray") is None, reason="the ray CLI is not on PATH")
def test_a_lost_node_costs_its_trial_nothing(tmp_path, tiny_csv):
    """SIGKILL the worker node (its raylet and every process it spawned) at a known moment (a
    checkpoint registered, the next epoch under way, its result not yet in): that trial continues
    from its checkpoint on the head, and every trial finishes.
    What Ray guarantees is asserted: the kept checkpoint's own history runs 1..N once, and Tune's
    log repeats at most the one boundary epoch (Ray logs a result, then saves its checkpoint in a
    second round trip), which every reader merges."""
    env = subprocess_env(RAY_AUTH_MODE="token", RAY_health_check_period_ms="1000",
                         RAY_health_check_failure_threshold="3")
    port, epochs = LOST_NODE_PORT, 12
    ray_start = ["ray", "start", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    exp = tmp_path / "results" / "exp" / "cnn"
    try:
        start_head(port, ray_start[2:] + ["--include-dashboard", "false"], env)
        subprocess.run(ray_start + ["--address", f"127.0.0.1:{port}", "--resources", '{"lost_node": 1}'], env=env,
                       check=True, capture_output=True, timeout=120)
        raylet, worker = _raylet("lost_node")
        space = tiny_sweep(tmp_path / "space.yaml", n=3, epochs=epochs, sched="fifo")
        space.write_text(space.read_text().replace("batch_size: 32", "batch_size: 4"))  # epochs of many batches
        cmd = _search(space, "--data", tiny_csv, "--storage-path", tmp_path / "results", "--name", "exp",
                      "--address", f"127.0.0.1:{port}")
        log = open(tmp_path / "sweep.log", "w+")
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline, lost = time.time() + 300, None
        while lost is None and time.time() < deadline:
            assert proc.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
            lost = _just_checkpointed(exp, worker, epoch=2)
            time.sleep(0.02)
        assert lost is not None, "no trial on the worker node reached its third epoch"
        for pid in _descendants(raylet):  # the worker node dies mid-epoch, its trial's process with it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        registered = max(r["training_iteration"] for r in _raw_rows(lost) if r.get("checkpoint_dir_name"))
        proc.wait(timeout=400)
        out = (tmp_path / "sweep.log").read_text()
        assert proc.returncode == 0, out[-3000:]
    finally:
        stop_cluster(port)
    table = trials_table(tmp_path / "results" / "exp")
    assert len(table) == 3 and set(table["status"]) == {"TERMINATED"}, table
    _, histories = trial_histories(exp)
    assert all(h["epoch"].tolist() == list(range(1, epochs + 1)) for h in histories.values())  # merged: once each
    newest = max(lost.glob("checkpoint_*/checkpoint.pt"), key=lambda p: p.parent.name)
    assert [m["epoch"] for m in load_checkpoint(newest)["history"]] == list(range(1, epochs + 1))
    raw = [r["training_iteration"] for r in _raw_rows(lost)]
    on_head = [r["training_iteration"] for r in _raw_rows(lost) if r.get("node_id") != worker]
    on_lost = [r["training_iteration"] for r in _raw_rows(lost) if r.get("node_id") == worker]
    # The trial died with its node; it continues on the head from the last checkpoint registered
    # (the one seen before the kill, or one the same instant registered).
    assert on_head[0] > registered and on_head[0] - 1 <= on_lost[-1], (on_lost, on_head, registered)
    repeated = [e for e in set(raw) if raw.count(e) > 1]
    assert sorted(set(raw)) == list(range(1, epochs + 1)) and len(raw) - len(set(raw)) <= 1, raw
    assert set(repeated) <= {on_head[0]}, raw  # only the boundary epoch, logged then rerun
    for trial_dir in exp.glob("trial_*"):
        if trial_dir != lost:  # a trial the kill did not touch logged each epoch once
            rows = [r["training_iteration"] for r in _raw_rows(trial_dir)]
            assert rows == list(range(1, epochs + 1)), rows
    print(f"{lost.name}: killed inside epoch {registered + 1}, epochs 1-{on_lost[-1]} logged from the lost node; "
          f"continued on the head from epoch {on_head[0]}")
