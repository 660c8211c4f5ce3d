"""How many trials one `search run` driver handles: near-empty trials (a few KB checkpoint per
epoch, no training) on one machine presenting 16, 64 and 256 logical CPUs, with the sweep's
own machinery on: BudgetLimiter (time budget set), re-checked ASHA rungs, trial growth
(ResourceChangingScheduler), the progress printer and the storage watch.

    python -m benchmarks.driver_scale [--cpus 16 64 256] [--trials-per-cpu 1] [--epoch-s 0.5]
                                      [--keep-checkpoints 1]

Measures, per logical CPU count: trials/s scheduled, the driver's CPU seconds per trial and
per result (getrusage of this process: Ray's own processes and the trials are not counted),
its peak RSS, and the driver functions of ours and of Tune that used most CPU (cProfile).
"""
from __future__ import annotations

import contextlib
import cProfile
import io
import pstats
import resource
import tempfile
import threading
import time
from pathlib import Path

import optuna
import ray

from benchmarks.common import cli, header, parser
from benchmarks.empty_trial import empty_trial
from search.space import SearchSpace
from search.sweep import run_sweep


def space(trials: int, keep: int) -> SearchSpace:
    return SearchSpace({"family": "cnn", "model": {"name": "seed_cnn"}, "train": {"lr": {"loguniform": [1e-4, 1e-1]}},
                        "settings": {"num_samples": trials, "max_epochs": 9, "grace_period": 1,
                                     "reduction_factor": 3, "cpus_per_trial": 1, "time_budget_s": 3600,
                                     "recheck_rungs": True, "grow_trials": True, "keep_checkpoints": keep}},
                       "driver_scale")


class MemoryWatch(threading.Thread):
    """The machine's peak memory in use (MemTotal - MemAvailable), sampled every 0.5 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_gb, self.done = 0.0, threading.Event()

    def run(self):
        while not self.done.wait(0.5):
            info = dict(line.split(":") for line in Path("/proc/meminfo").read_text().splitlines())
            used = int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])
            self.peak_gb = max(self.peak_gb, used / 2**20)


def measure(cpus: int, trials: int, epoch_s: float, keep: int, storage: str) -> dict:
    memory = MemoryWatch()
    memory.start()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    usage0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    profile = cProfile.Profile(time.process_time)  # CPU, not wall: the driver mostly waits
    with contextlib.redirect_stdout(io.StringIO()) as out:  # the per-epoch lines
        grid = profile.runcall(run_sweep, space(trials, keep), empty_trial, storage, f"cpus{cpus}",
                               epoch_s=epoch_s)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    ray.shutdown()
    memory.done.set()
    results = sum(len(r.metrics_dataframe) for r in grid if r.metrics_dataframe is not None)
    cpu = usage.ru_utime + usage.ru_stime - usage0.ru_utime - usage0.ru_stime
    return {"cpus": cpus, "trials": len(grid), "errors": sum(r.error is not None for r in grid), "results": results,
            "wall_s": wall, "trials_per_s": len(grid) / wall, "driver_cpu_s": cpu,
            "cpu_ms_per_trial": 1000 * cpu / len(grid), "cpu_ms_per_result": 1000 * cpu / max(results, 1),
            "peak_rss_mb": usage.ru_maxrss / 1024, "machine_peak_gb": memory.peak_gb,
            "grown": out.getvalue().count(" continues from epoch "),
            "profile": _top(profile)}


def _top(profile: cProfile.Profile, n: int = 5) -> list[tuple[str, float]]:
    """Cumulative CPU of the n costliest functions of Tune's controller, and of our search/ code."""
    stats = pstats.Stats(profile)
    ours, tune_rows = [], []
    for (file, line, name), (_, _, _, cum, _) in stats.stats.items():
        if "/search/" in file and name != "run_sweep":
            ours.append((f"{file.split('/search/')[-1]}:{line} {name} (ours)", cum))
        elif "tune_controller" in file and name not in ("step", "run"):
            tune_rows.append((f"tune_controller.py:{line} {name}", cum))
    return sorted(tune_rows, key=lambda r: -r[1])[:n] + sorted(ours, key=lambda r: -r[1])[:n]


def main() -> None:
    p = parser()
    p.add_argument("--cpus", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--trials-per-cpu", type=float, default=1.0)
    p.add_argument("--keep-checkpoints", type=int, default=1, help="the sweep setting (1: a snapshot per result)")
    p.add_argument("--epoch-s", type=float, default=0.5)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    header("How many trials one driver handles")
    rows = []
    with tempfile.TemporaryDirectory() as storage:
        for cpus in args.cpus:
            rows.append(measure(cpus, int(cpus * args.trials_per_cpu), args.epoch_s, args.keep_checkpoints, storage))
            print(f"measured {cpus} CPUs: {rows[-1]['wall_s']:.0f}s", flush=True)
    print("\n| logical CPUs | trials | results | errors | wall s | trials/s | driver CPU ms/trial | "
          "driver CPU ms/result | driver peak RSS MB | machine peak GB in use | trials grown |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['cpus']} | {r['trials']} | {r['results']} | {r['errors']} | {r['wall_s']:.0f} | "
              f"{r['trials_per_s']:.2f} | {r['cpu_ms_per_trial']:.0f} | {r['cpu_ms_per_result']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {r['machine_peak_gb']:.1f} | {r['grown']} |")
    for r in rows:
        print(f"\nDriver CPU by function (cumulative s), {r['cpus']} logical CPUs:\n")
        for name, cum in r["profile"]:
            print(f"- `{name}`: {cum:.1f}")


if __name__ == "__main__":
    cli(main)
