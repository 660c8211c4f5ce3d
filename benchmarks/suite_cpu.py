"""Where a command's CPU goes, by kind of process: a command (the test suite, by default) runs
while every process's CPU time is read every 0.3 s; at the end each process's last reading is
summed by kind (Tune's trial workers, `search run` drivers, Ray's own processes, ...).

    python -m benchmarks.suite_cpu                        # python -m pytest -q
    python -m benchmarks.suite_cpu -- python -m search run
    python -m benchmarks.suite_cpu --per-test             # and each test's CPU, largest first

Per test: this module is also a pytest plugin (`-p benchmarks.suite_cpu`) that logs when each
test starts and ends on its worker, and each process's CPU goes to the pytest-xdist worker whose
folder its environment names (tests/conftest.py gives worker gwN a TMPDIR /tmp/fer-gwN-..., which
every process a test starts inherits; the worker itself is known by its pid). A test's CPU is
its worker's processes' CPU between its start and its end.

A process that ends between two readings loses its last 0.3 s, and processes that were running
before the command (the kernel's, the machine's agents) are left out, so the figures are lower
bounds. psutil comes with Ray (its third-party folder), which is imported for it.
"""
from __future__ import annotations

import bisect
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from benchmarks.common import cli, parser

KINDS = [  # (kind, any of these in the command line), first match wins
    ("pytest workers", ("xdist", "-m pytest")),
    ("Tune trial workers", ("ray::ImplicitFunc", "ray::_Inner")),
    ("Ray idle workers", ("ray::IDLE", "default_worker.py")),
    ("Ray's own processes", ("gcs_server", "/raylet", "dashboard", "log_monitor", "monitor.py", "runtime_env",
                             "ray::DashboardA", "ray::RuntimeEnv")),
    ("search drivers", ("-m search", "fer-search")),
    ("fer commands", ("-m fer",)),
    ("analysis commands", ("-m analysis",)),
    ("benchmark scripts", ("-m benchmarks",)),
]


def kind(cmdline: str) -> str:
    """The kind of a process, from its command line (KINDS), else "other"."""
    return next((name for name, keys in KINDS if any(k in cmdline for k in keys)), "other")


MARK_ENV = "SUITE_CPU_MARK"  # set in the command's environment, which every process it starts inherits
LOG_ENV = "SUITE_CPU_LOG"  # where the plugin below appends each test's start and end


def worker_of(environ: dict) -> str | None:
    """The pytest-xdist worker (gwN) a process belongs to, from its environment, if any."""
    found = re.search(r"/fer-(gw\d+)-", environ.get("TMPDIR", ""))
    return found.group(1) if found else None


def sample(command: list[str], every_s: float = 0.3, ticks: list | None = None, env: dict | None = None,
           ) -> tuple[dict[str, float], dict[str, int], float, int]:
    """Run `command`, reading CPU times until it ends: ({kind: CPU-s}, {kind: processes}, wall s, exit code).
    Only the command's processes count: those whose environment carries its MARK_ENV.
    With `ticks`, each reading appends (time, {worker or "pid:N": CPU-s since the last reading})."""
    import ray  # noqa: F401, I001  (first: it puts its psutil on the path)
    import psutil

    before = {p.pid for p in psutil.process_iter()}
    last: dict[tuple[int, float], tuple[float, str]] = {}
    owner: dict[tuple[int, float], str] = {}
    ours: dict[tuple[int, float], bool] = {}  # a process is the command's when its environment carries the mark
    mark = f"{os.getpid()}-{time.time_ns()}"
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, env={**(os.environ if env is None else env), MARK_ENV: mark})
    while proc.poll() is None:
        used: collections.Counter = collections.Counter()
        for p in psutil.process_iter(["pid", "cmdline", "cpu_times", "create_time"]):
            if p.info["pid"] in before or p.info["cpu_times"] is None:
                continue
            key, cpu = (p.info["pid"], p.info["create_time"]), p.info["cpu_times"].user + p.info["cpu_times"].system
            if key not in ours:  # (another command's processes, e.g. a second pytest run's, are left out)
                try:
                    ours[key] = p.environ().get(MARK_ENV) == mark
                except psutil.Error:
                    ours[key] = False
            if not ours[key]:
                continue
            if ticks is not None:
                if key not in owner:
                    try:
                        owner[key] = worker_of(p.environ()) or f"pid:{key[0]}"
                    except psutil.Error:
                        owner[key] = f"pid:{key[0]}"
                used[owner[key]] += cpu - last.get(key, (0.0, ""))[0]
            last[key] = (cpu, " ".join(p.info["cmdline"] or []))
        if ticks is not None:
            ticks.append((time.time(), dict(used)))
        time.sleep(every_s)
    seconds, counts = collections.Counter(), collections.Counter()
    for cpu, cmdline in last.values():
        seconds[kind(cmdline)] += cpu
        counts[kind(cmdline)] += 1
    return dict(seconds), dict(counts), time.perf_counter() - t0, proc.returncode


def per_test(ticks: list[tuple[float, dict]], events: list[dict]) -> dict[str, tuple[float, float]]:
    """{test: (CPU-s, wall s)}: the CPU its worker's processes used between its start and its end.
    `events` are the plugin's lines; a worker's own process is known by the pid it logged."""
    pids = {f"pid:{e['pid']}": e["worker"] for e in events}
    times = [t for t, _ in ticks]
    used = []
    for _, u in ticks:  # (a worker's own pid and the processes of its tests: one worker)
        used.append(collections.Counter())
        for k, v in u.items():
            used[-1][pids.get(k, k)] += v
    workers = {e["worker"] for e in events}
    started, out = {}, {}
    for e in events:
        if e["worker"] == "main" and len(workers) > 1:
            continue  # the xdist controller echoes every worker's tests
        if e["event"] == "start":
            started[(e["worker"], e["test"])] = e["t"]
            continue
        t0 = started.pop((e["worker"], e["test"]))
        i, j = bisect.bisect_right(times, t0), bisect.bisect_left(times, e["t"])  # from the reading after its
        # start to the first at or after its end (each reading holds the CPU since the one before)
        cpu = sum(used[k][e["worker"]] for k in range(i, min(j + 1, len(used))))
        out[e["test"]] = (cpu, e["t"] - t0)
    return out


def _log(event: str, nodeid: str) -> None:
    if path := os.environ.get(LOG_ENV):
        line = {"event": event, "test": nodeid.split("@")[0], "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
                "pid": os.getpid(), "t": time.time()}
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


def pytest_runtest_logstart(nodeid, location):  # (a pytest hook: -p benchmarks.suite_cpu)
    _log("start", nodeid)


def pytest_runtest_logfinish(nodeid, location):
    _log("end", nodeid)


def main(argv: list[str] | None = None) -> int:
    p = parser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", nargs="*", help="the command to run (default: python -m pytest -q)")
    p.add_argument("--per-test", type=int, nargs="?", const=40, default=0, metavar="N",
                   help="also each test's CPU-s and wall s, the N largest (default 40): the command gets "
                        "`-p benchmarks.suite_cpu`, so it must be pytest")
    args = p.parse_args(argv)
    command = args.command or [sys.executable, "-m", "pytest", "-q"]
    if not args.per_test:
        return _report(*sample(command))
    with tempfile.TemporaryDirectory() as d:
        log, ticks = os.path.join(d, "tests.jsonl"), []
        result = sample([*command, "-p", "benchmarks.suite_cpu"], ticks=ticks, env={**os.environ, LOG_ENV: log})
        events = []
        if os.path.exists(log):
            with open(log) as f:
                events = [json.loads(line) for line in f]
    code = _report(*result)
    print("\n| test | CPU-s | wall s |\n| --- | ---: | ---: |")
    for test, (cpu, wall) in sorted(per_test(ticks, events).items(), key=lambda kv: -kv[1][0])[:args.per_test]:
        print(f"| {test} | {cpu:.1f} | {wall:.1f} |")
    return code


def _report(seconds: dict, counts: dict, wall: float, code: int) -> int:
    print("\n| kind of process | CPU-s | processes |\n| --- | ---: | ---: |")
    for name, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {s:.0f} | {counts[name]} |")
    print(f"| all | {sum(seconds.values()):.0f} | {sum(counts.values())} |\n\nwall {wall:.0f} s; exit {code}")
    return code


if __name__ == "__main__":
    cli(main)
