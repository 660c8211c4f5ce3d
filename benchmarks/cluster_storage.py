"""A sweep on a two-node local Ray cluster with its results on an S3-compatible server, and how long
reading them back takes against the same experiment in a local folder.

    python -m benchmarks.cluster_storage [--data PATH] [--space configs/dnn.yaml] [--budget 300]

Starts moto's S3 server on loopback (the test extra) and `ray start` a head and a worker of one
CPU each, runs `search run SPACE --time-budget-s BUDGET --storage-path s3://...`, then copies
the experiment to a local folder and times `search best`, `search table` and `analysis report`
on each (the s3:// ones twice: a cold checkpoint cache, then a warm one). Prints one Markdown table.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import SHARED_FER, cli, header, parser
from fer.speed import cpu_bf16_flag, cpu_model
from tests.conftest import S3Server, free_port

REPO = Path(__file__).resolve().parents[1]
PORT = "46391"


def timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0, done.stdout


def start(env: dict) -> None:
    ray_start = ["ray", "start", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    subprocess.run(ray_start + ["--head", "--port", PORT, "--include-dashboard", "false"], env=env, check=True,
                   capture_output=True)
    subprocess.run(ray_start + ["--address", f"127.0.0.1:{PORT}"], env=env, check=True, capture_output=True)


def main() -> int:
    p = parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(SHARED_FER))
    p.add_argument("--space", default="configs/dnn.yaml")
    p.add_argument("--budget", type=float, default=300.0)
    args = p.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="fer-cluster-storage-"))
    s3 = S3Server(port)
    env = {**os.environ, **s3.env, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "token",
           "FER_CACHE_DIR": str(work / "cache")}
    env.pop("RAY_ADDRESS", None)
    try:
        time.sleep(3)
        store = s3.bucket("bench") + "/fer"
        start(env)
        sweep_s, out = timed([sys.executable, "-m", "search", "run", str(REPO / args.space), "--data", args.data,
                              "--storage-path", store, "--name", "exp", "--address", f"127.0.0.1:{PORT}",
                              "--time-budget-s", str(args.budget), "--no-report"], env, work)
        budget = re.findall(r"^\S+ budget: .*$", out, re.M) + re.findall(r"^\S+: \d+ trials, best .*$", out, re.M)
        local = work / "local" / "exp"
        copied = _download(s3, "bench", "fer/exp/", local)
        rows = []
        for what, cmd in [("search best", ["-m", "search", "best"]), ("search table", ["-m", "search", "table"]),
                          ("analysis report", ["-m", "analysis", "report"])]:
            extra = ["--out", str(work / f"report-{len(rows)}")] if what == "analysis report" else []
            cold, _ = timed([sys.executable, *cmd, f"{store}/exp", *extra], env, work)
            warm, _ = timed([sys.executable, *cmd, f"{store}/exp", *extra], env, work)
            here, _ = timed([sys.executable, *cmd, str(local), *extra], env, work)
            rows.append((what, cold, warm, here))
    finally:
        from tests.search.conftest import stop_cluster

        stop_cluster(PORT)
        server.terminate()
    header(f"A two-node sweep on s3:// ({args.space}, {args.budget:g} s)")
    size = sum(f.stat().st_size for f in local.rglob("*") if f.is_file()) / 2**20
    print(f"CPU: {cpu_model()} ({cpu_bf16_flag() or 'no bf16 flag'}); 2 Ray nodes of 1 CPU each on this machine, "
          f"moto's S3 server on loopback; the experiment: {copied} objects, {size:.1f} MiB\n")
    print(f"sweep: {sweep_s:.0f} s in all; " + "; ".join(budget) + "\n")
    print("| command | s3://, cold cache (s) | s3://, warm cache (s) | local folder (s) |")
    print("| --- | ---: | ---: | ---: |")
    for what, cold, warm, here in rows:
        print(f"| {what} | {cold:.1f} | {warm:.1f} | {here:.1f} |")
    return 0


def _download(s3: S3Server, bucket: str, prefix: str, to: Path) -> int:
    """Every object under prefix into the folder `to`: the same experiment, local."""
    client, n = s3.client(), 0
    for key in s3.keys(bucket):
        if key.startswith(prefix) and not key.endswith("/"):
            target = to / key[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(target))
            n += 1
    return n


if __name__ == "__main__":
    cli(main)
