"""The CLIs as a user and a shell script meet them: Ctrl-C and SIGTERM, failed trials,
resources no node has, and the default concurrency on a logical 8-CPU, 2-GPU Ray head."""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search.results import trials_table
from tests.conftest import subprocess_env
from tests.factories import tiny_sweep
from tests.search.conftest import LOGICAL_HEAD_PORT, start_head, stop_cluster

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _start(argv, log: Path, cwd=REPO, env=None) -> subprocess.Popen:
    """(PYTHONFAULTHANDLER: a command that hangs can be made to print every thread's stack, _stderr_after.)"""
    return subprocess.Popen([sys.executable, "-m", *argv], cwd=cwd, env=env or subprocess_env(PYTHONFAULTHANDLER="1"),
                            stdout=open(log, "w"), stderr=subprocess.PIPE, text=True, start_new_session=True)


def _stderr_after(proc: subprocess.Popen, signum: int, timeout: float = 120, group: bool = True) -> str:
    """Send `signum` to the command's process group (as Ctrl-C in a terminal), or with `group=False`
    to the command alone (as a batch scheduler's stop); its stderr once it has ended. One that has
    not ended within `timeout` fails the test with where it waits: SIGABRT makes Python's fault
    handler print each thread's stack (or, if the command had ended, a process it left holding
    its stderr is named by being killed)."""
    if group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        ended = proc.poll()
        os.killpg(proc.pid, signal.SIGABRT)
        err = proc.communicate(timeout=60)[1]
        pytest.fail(f"not done {timeout:.0f} s after signal {signum} (the command had "
                    f"{'ended, ' + str(ended) if ended is not None else 'not ended'}); stderr:\n{err[-8000:]}")


def _wait_for(proc: subprocess.Popen, log: Path, text: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while text not in log.read_text():
        assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_every_sweep_and_resume_completes(tmp_path, signum, tiny_csv, request):
    """Ctrl-C reaches the driver and the local Ray it started; a batch scheduler's SIGTERM, the
    driver alone, here one that joined a running cluster (the session's)."""
    storage = tmp_path / "results"  # (the tiny faces: 6 epochs leave seconds of the first sweep to signal into)
    argv = ["search", "run", "--data", str(tiny_csv), "--num-samples", "2", "--max-epochs", "6",
            "--storage-path", str(storage)]
    if signum == signal.SIGTERM:
        argv += ["--address", request.getfixturevalue("ray_cluster")]
    proc = _start(argv, tmp_path / "out.log")
    _wait_for(proc, tmp_path / "out.log", " epoch   1 ")
    err = _stderr_after(proc, signum, group=signum == signal.SIGINT)
    assert proc.returncode == 130, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("search: interrupted; the sweeps' state is saved; continue with: python -m search run")
    assert "Traceback" not in err
    assert not (storage / "quickstart" / "dnn").exists()  # the second sweep never started
    assert not (storage / "quickstart" / "report").exists()
    if signum == signal.SIGTERM:
        return
    resume = shlex.split(line.split("continue with: ")[1])
    assert resume[-1] == "--resume"
    done = subprocess.run([sys.executable, *resume[1:], "--no-report"], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = trials_table(storage / "quickstart")
    assert table.groupby("family").size().to_dict() == {"cnn": 2, "dnn": 2}  # the counts asked for
    assert set(table["status"]) == {"TERMINATED"}
    again = subprocess.run([sys.executable, *resume[1:], "--no-report", "--address",
                            request.getfixturevalue("ray_cluster")], cwd=REPO, env=subprocess_env(),
                           capture_output=True, text=True, timeout=400)  # a resume with nothing left to run
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert [line for line in again.stdout.splitlines() if "nothing ran" in line or "budget:" in line] == [
        f"{sweep}: every trial had ended before this --resume; nothing ran" for sweep in ("cnn", "dnn")]
    rows = lambda t: sorted(map(tuple, t[["trial_id", "status", "checkpoint"]].values.tolist()))  # noqa: E731
    assert rows(trials_table(storage / "quickstart")) == rows(table)  # no trial ran again


def test_failed_trials_exit_1_with_one_line_each(tmp_path, ray_cluster):
    space = tmp_path / "space.yaml"  # seven 2x2 poolings leave a 48x48 face no pixels: fails at run time
    space.write_text("settings: {num_samples: 2, max_epochs: 1, grace_period: 1, max_failures: 1}\n"
                     "family: cnn\n"
                     "model: {channels: {choice: [[4, 8], [4, 4, 4, 4, 4, 4, 4]]}, kernel_sizes: [3],\n"
                     "        convs_per_block: 1, head: gap, head_hidden: [], pool: max}\n"
                     "train: {batch_size: 64, lr: 0.01}\n")
    done = subprocess.run([sys.executable, "-m", "search", "run", str(space), "--storage-path", str(tmp_path),
                           "--no-report", "--address", ray_cluster], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stdout + done.stderr
    assert re.match(r"search: trial cnn/\w+ failed after its retries: RuntimeError: .*Output size is too small "
                    r"\(full text: .*error\.txt\)$", lines[0]), lines
    assert Path(lines[0].split("full text: ")[1][:-1]).exists()
    assert re.search(r"\w+ +failed +0 ", done.stdout) and re.search(r"\w+ +finished +1 ", done.stdout)


def test_a_trial_no_node_can_hold_is_refused_before_any_sweep(tmp_path, ray_cluster):
    done = subprocess.run([sys.executable, "-m", "search", "run", "--cpus-per-trial", "64", "--storage-path",
                           str(tmp_path), "--address", ray_cluster], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert re.fullmatch(r"search: error: no node of the Ray cluster \(1 node, 2 CPUs, 1 GPU\) can hold a trial of 64 "
                        r"CPUs: lower --cpus-per-trial or --gpus-per-trial\n", done.stderr), done.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(shutil.which("ray") is None, reason="the ray CLI is not on PATH")
def test_default_concurrency_fills_a_logical_8_cpu_2_gpu_head(tmp_path, tiny_csv):
    env, port = subprocess_env(RAY_AUTH_MODE="token"), LOGICAL_HEAD_PORT
    space = tiny_sweep(tmp_path / "space.yaml", n=1, epochs=1)
    space.write_text(space.read_text().replace("max_concurrent: 2,", ""))
    try:
        start_head(port, ["--node-ip-address", "127.0.0.1", "--num-cpus", "8", "--num-gpus", "2",
                          "--include-dashboard", "false", "--disable-usage-stats"], env)
        said = {}
        for gpus, name in (("0", "cpu"), ("0.5", "gpu")):  # the sweep's first line says it; then it is stopped
            log = tmp_path / f"{name}.log"
            proc = _start(["search", "run", str(space), "--data", str(tiny_csv), "--address", f"127.0.0.1:{port}",
                           "--gpus-per-trial", gpus, "--name", name, "--storage-path", str(tmp_path / "results"),
                           "--no-report"], log, env=env)
            _wait_for(proc, log, " at a time (")
            proc.send_signal(signal.SIGTERM)
            err = proc.communicate(timeout=120)[1]
            assert proc.returncode == 130, err
            said[name] = log.read_text().splitlines()[0]
    finally:
        stop_cluster(port)
    assert said["cpu"].endswith("8 at a time (the cluster (1 node, 8 CPUs, 2 GPUs) holds 8 trials of 1 CPU)")
    assert said["gpu"].endswith("4 at a time (the cluster (1 node, 8 CPUs, 2 GPUs) holds 4 trials of 1 CPU + "
                                "0.5 GPUs)")


def test_ctrl_c_during_fer_train_keeps_the_best_epoch_so_far(tmp_path):
    out = tmp_path / "run"
    proc = _start(["fer", "train", "--config", "configs/runs/seed_dnn.yaml", "--epochs", "500",
                   "train.early_stopping=0", "--out", str(out)], tmp_path / "out.log")
    _wait_for(proc, tmp_path / "out.log", "epoch   3/500")
    err = _stderr_after(proc, signal.SIGINT)
    assert proc.returncode == 130
    assert re.fullmatch(rf"fer: interrupted; kept epoch \d+, the best of \d+, in {out}/checkpoint.pt\n", err), err
    from fer.checkpoint import load_checkpoint

    payload = load_checkpoint(out / "checkpoint.pt")
    best = max(payload["history"], key=lambda m: m["val_acc"])
    assert payload["best_epoch"] == best["epoch"] and len(payload["history"]) >= 3


def test_ctrl_c_during_the_report_still_stops_the_command(tmp_path, ray_cluster):
    storage, space = tmp_path / "results", tiny_sweep(tmp_path / "space.yaml", n=2, epochs=1, sched="fifo")
    proc = _start(["search", "run", str(space), "--name", "quickstart", "--storage-path", str(storage),
                   "--address", ray_cluster], tmp_path / "out.log")
    _wait_for(proc, tmp_path / "out.log", "done in ")  # the sweeps are over; the report is being written
    err = _stderr_after(proc, signal.SIGINT)
    assert proc.returncode == 130 and "search: interrupted" in err, err
    assert not (storage / "quickstart" / "report").exists()  # a report cut short is not left behind
