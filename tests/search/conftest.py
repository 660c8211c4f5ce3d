"""An in-process Ray (2 CPUs, 1 logical GPU) per test module, the tiny data its sweeps train on,
and a PostgreSQL server for studies."""
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from fer.data import load_data
from tests.conftest import free_port  # noqa: F401  (tests.search modules import it from here)

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    """A clock a test moves by hand: callable (Budget's clock) and a stand-in for the time module."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    monotonic = time


@pytest.fixture
def clock(request, monkeypatch):
    """A FakeClock as `time` in the modules the test module lists in CLOCKED, inside a fresh
    experiment context (search.context)."""
    from search.context import SweepContext

    c = FakeClock()
    for module in request.module.CLOCKED:
        monkeypatch.setattr(module, "time", c)
    with SweepContext().active():
        yield c


@pytest.fixture
def sweep_context():
    """A fresh experiment context, active for the test: callbacks and the searcher used on their own."""
    from search.context import SweepContext

    with SweepContext().active() as context:
        yield context


@pytest.fixture(scope="module")
def faces(tiny_csv):
    return load_data(str(tiny_csv))


PG_PASSWORD = "pg-S3cret-never-written"  # the tests look for it in every file and line a sweep writes


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of Debian's postgresql package (installed by .ci/run), on loopback,
    that asks for a password (PG_PASSWORD, in the URL)."""
    initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not initdb:
        pytest.skip("no PostgreSQL server installed (.ci/run installs Debian's postgresql package)")
    bin_dir, data = initdb[-1].parent, Path(tempfile.mkdtemp(prefix="fer-pg-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(data, "postgres")  # the server refuses to run as root
    (data / "pw").write_text(PG_PASSWORD)
    if as_postgres:
        shutil.chown(data / "pw", "postgres")
    subprocess.run([*as_postgres, bin_dir / "initdb", "-D", data / "db", "-A", "scram-sha-256", "-U", "postgres",
                    f"--pwfile={data / 'pw'}"], check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen([*as_postgres, bin_dir / "postgres", "-D", data / "db", "-p", str(port),
                               "-h", "127.0.0.1", "-k", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{port}/postgres"
    for _ in range(100):
        try:
            optuna.storages.RDBStorage(url)
            break
        except Exception:
            time.sleep(0.2)
    else:
        server.terminate()
        pytest.skip("the PostgreSQL server did not start")
    yield url
    server.terminate()
    server.wait(timeout=30)
    shutil.rmtree(data, ignore_errors=True)


# The GCS ports of the tests' own `ray start` clusters, which may run side by side (one per
# pytest worker). They lie outside the kernel's ephemeral range (32768-60999), where the random
# ports of every Ray process land (a raylet's object manager, an agent's metrics), and outside
# Ray's worker ports (10002-19999): another cluster's random port must never take one.
LOST_NODE_PORT, CLUSTER_PATH_PORT, LOGICAL_HEAD_PORT = "26381", "26383", "26390"


def stop_cluster(port: str) -> None:
    """Stop the `ray start` cluster whose GCS listens on `port`, and nothing else: `ray stop --force`
    would also kill every other Ray on the machine, a user's running sweep among them. Its
    processes name the GCS address (GCS, raylet, agents) or descend from one that does (workers);
    a process of another cluster whose own port has the same number (`--object_manager_port=...`)
    is not one of them."""
    procs = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            procs[int(proc.name)] = (int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]), cmd)
        except (OSError, ValueError, IndexError):
            continue
    gcs = re.compile(rf"(:|gcs_server_port=){port}(?!\d)")  # its GCS address, never another port's value
    doomed = {pid for pid, (_, cmd) in procs.items() if gcs.search(cmd)} - {os.getpid()}
    while grown := {pid for pid, (ppid, _) in procs.items() if ppid in doomed} - doomed:
        doomed |= grown
    for pid in doomed:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # ray start's pointer for ray.init()
    if current.exists() and current.read_text().strip().endswith(f":{port}"):
        current.unlink()


def start_head(port: str, args: list[str], env: dict) -> None:
    """`ray start --head --port PORT ARGS`, once more after a clean-up if it fails: on a loaded
    machine its wait for the GCS it has just started can time out ("Failed to connect to GCS ...
    within" its timeout, seen once in CI while the suite's longest groups ran)."""
    cmd = ["ray", "start", "--head", "--port", port, *args]
    for _ in range(2):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            return
        stop_cluster(port)
    raise AssertionError(f"{' '.join(cmd)} failed twice: {done.stderr[-2000:]}")
