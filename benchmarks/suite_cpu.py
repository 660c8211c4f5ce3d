"""Where a command's CPU goes, by kind of process: a command (the test suite, by default) runs
while every process's CPU time is read every 0.3 s; at the end each process's last reading is
summed by kind (Tune's trial workers, `search run` drivers, Ray's own processes, ...).

    python -m benchmarks.suite_cpu                        # python -m pytest -q
    python -m benchmarks.suite_cpu -- python -m search run

A process that ends between two readings loses its last 0.3 s, and processes that were running
before the command (the kernel's, the machine's agents) are left out, so the figures are lower
bounds. psutil comes with Ray (its third-party folder), which is imported for it.
"""
from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import time

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


def sample(command: list[str], every_s: float = 0.3) -> tuple[dict[str, float], dict[str, int], float, int]:
    """Run `command`, reading CPU times until it ends: ({kind: CPU-s}, {kind: processes}, wall s, exit code)."""
    import ray  # noqa: F401, I001  (first: it puts its psutil on the path)
    import psutil

    before = {p.pid for p in psutil.process_iter()}
    last: dict[tuple[int, float], tuple[float, str]] = {}
    t0 = time.perf_counter()
    proc = subprocess.Popen(command)
    while proc.poll() is None:
        for p in psutil.process_iter(["pid", "cmdline", "cpu_times", "create_time"]):
            if p.info["pid"] in before or p.info["cpu_times"] is None:
                continue
            cpu = p.info["cpu_times"].user + p.info["cpu_times"].system
            last[(p.info["pid"], p.info["create_time"])] = (cpu, " ".join(p.info["cmdline"] or []))
        time.sleep(every_s)
    seconds, counts = collections.Counter(), collections.Counter()
    for cpu, cmdline in last.values():
        seconds[kind(cmdline)] += cpu
        counts[kind(cmdline)] += 1
    return dict(seconds), dict(counts), time.perf_counter() - t0, proc.returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.suite_cpu", description=__doc__.split("\n\n")[0])
    p.add_argument("command", nargs="*", help="the command to run (default: python -m pytest -q)")
    args = p.parse_args(argv)
    seconds, counts, wall, code = sample(args.command or [sys.executable, "-m", "pytest", "-q"])
    print("\n| kind of process | CPU-s | processes |\n| --- | ---: | ---: |")
    for name, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {s:.0f} | {counts[name]} |")
    print(f"| all | {sum(seconds.values()):.0f} | {sum(counts.values())} |\n\nwall {wall:.0f} s; exit {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
