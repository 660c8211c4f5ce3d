import atexit
import gzip
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.factories import TINY_RUNS, write_kaggle

pytest_plugins = ["tests.ordering"]  # the groups' order: longest first

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # a worker of `-n N`, set up before torch or Ray is imported:
    # its share of the CPUs, for torch here and the commands it runs (N workers of all-CPU threads
    # spin against each other), and a temporary folder of its own: Ray keeps its sessions and the
    # address `--address auto` joins (ray_current_cluster) there, and two workers' clusters must
    # never find each other
    _share = len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ["OMP_NUM_THREADS"] = str(max(1, _share))
    os.environ["TMPDIR"] = tempfile.mkdtemp(prefix=f"fer-{os.environ['PYTEST_XDIST_WORKER']}-", dir="/tmp")
    os.chmod(os.environ["TMPDIR"], 0o755)  # the PostgreSQL server runs as its own user, in a folder under it
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    atexit.register(shutil.rmtree, os.environ["TMPDIR"], ignore_errors=True)

SHARED_FER = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013.csv.gz"


MAX_WORKERS = 4  # each worker holds torch and, in a Ray test, a Ray of 2 CPUs: more would swap, not speed up


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject.toml): one worker per CPU this process may use, at most MAX_WORKERS."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """For `--dist loadgroup`: each module's tests form one group, run by one worker (module
    fixtures and the module's Ray are built once), unless a test names a group of its own; the
    order in which the groups are handed out is tests/ordering.py's."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """One cache folder per test session (per worker), never the user's: session fixtures that
    train (trained_runs) measure into it too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "fer-cache"))
        yield


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny trained run folder per family (tests.factories.TINY_RUNS), trained once per
    session through `fer train`, for the tests that only read a checkpoint."""
    from fer.cli import main

    runs = {}
    for family, overrides in TINY_RUNS.items():
        runs[family] = tmp_path_factory.mktemp(f"trained-{family}")
        assert main(["train", "--epochs", "2", "--out", str(runs[family]), *overrides]) == 0
    return runs


@pytest.fixture
def write_csv(tmp_path):
    def write(text: str, name: str = "data.csv") -> Path:
        path = tmp_path / name
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
        return path
    return write


@pytest.fixture(scope="session")
def synthetic():
    from fer.data import SyntheticSpec, make_synthetic
    return make_synthetic(SyntheticSpec(n_per_class=60, seed=1))


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory):
    from fer.data import SyntheticSpec, make_synthetic

    faces = make_synthetic(SyntheticSpec(n_per_class=80, seed=2))
    return write_kaggle(faces, tmp_path_factory.mktemp("data") / "tiny.csv")


@pytest.fixture(scope="session")
def ray_cluster():
    """The test session's one local Ray (2 CPUs and a logical GPU), started by the first test that
    asks: sweeps run in this process use it, commands join it with `--address` (its GCS address,
    the fixture's value). Under -n N each worker has its own."""
    import ray

    os.environ["PYTHONPATH"] = f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"  # workers import tests.*
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def ray_inits(monkeypatch) -> list:
    """Every ray.init a command tries (each refused): for tests of work refused before Ray starts,
    which the session's cluster, up in this process or not, must not decide."""
    import ray

    calls = []

    def refused(*args, **kwargs):
        calls.append(kwargs.get("address"))
        raise RuntimeError("ray.init called by a command that should have stopped before it")

    monkeypatch.setattr(ray, "init", refused)
    return calls


@pytest.fixture
def stale_ray_pointer():
    """Ray's ray_current_cluster file naming a head that died without `ray stop` (a port nothing
    listens on), as a killed or OOM'd `ray start` leaves it; put back as it was afterwards."""
    import tempfile

    pointer = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    before = pointer.read_bytes() if pointer.exists() else None
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(f"127.0.0.1:{free_port()}")
    yield pointer
    if before is None:
        pointer.unlink(missing_ok=True)
    else:
        pointer.write_bytes(before)


REPO = Path(__file__).resolve().parents[1]


def subprocess_env(**extra) -> dict:
    """The environment of a command a test runs as a user would: this checkout importable, output
    unbuffered, and no RAY_ADDRESS (each command starts a Ray of its own unless told otherwise)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **extra}
    env.pop("RAY_ADDRESS", None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """An S3-compatible server on loopback: `env` points pyarrow (so Ray Tune and fer.remote) and
    boto3 at it; `bucket(name)` makes a bucket and returns its s3:// URI."""

    def __init__(self, port: int):
        self.env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
                    "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.fixture(scope="session")
def s3_server():
    """moto's standalone server (the test extra moto[server]: it installs from PyPI, where MinIO's
    server does not), its AWS_* variables set in this process for the session."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s3 = S3Server(port)
    for _ in range(150):
        try:
            s3.client().list_buckets()
            break
        except Exception:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.skip("moto's S3 server did not start")
    saved = {k: os.environ.get(k) for k in s3.env}
    os.environ.update(s3.env)
    yield s3
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.terminate()
    server.wait(timeout=30)
