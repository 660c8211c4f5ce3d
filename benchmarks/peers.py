"""Search quality against its peers: this project's `search run` against bare Ray Tune, bare Optuna
and our own random + FIFO, at the same wall-clock budget on the same machine, over seeds.

    python -m benchmarks.peers --space configs/dnn.yaml --budget 300 --seeds 5
    python -m benchmarks.peers --space configs/cnn.yaml --budget 1200 --seeds 2

Every system searches the same space file (the bare peers sample it through the same Optuna
define-by-run translation, search.space.SearchSpace.define_by_run), trains with the same fer code
and selects on the same stratified holdout of Training: they read a copy of the data without its
PublicTest rows, so `train.val_fraction` holds the holdout out. The model each system selects is
then scored on PublicTest, which none of them saw: a selection score grows more optimistic with
every trial, so only an untouched split compares systems fairly.

- this project: `python -m search run SPACE --time-budget-s B --seed S` as shipped;
- random + FIFO: the same with `--searcher random --scheduler fifo`;
- Ray Tune and Optuna, bare: benchmarks/peer_systems.py (which doc each setting comes from).

Each system runs alone, in a process of its own, launched by this script; seconds count from the
launch. A system's selection at time t is its best trial (by the space's metric, on the holdout)
among the trials that had ended by t, scored by the checkpoint it kept of that trial: the
anytime curve. At the deadline every trial has ended. Results land in
OUT/SPACE-BUDGETs/seedN/SYSTEM/ as each run finishes; a run already there is read, not redone, so
the seeds of one table may be run over several sittings. Develop on seeds other than the
reported ones (--first-seed).
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from benchmarks.common import SHARED_FER, cli, header, parser, write_kaggle
from benchmarks.peer_systems import cpus_here

SYSTEMS = ("project", "random_fifo", "ray_tune", "optuna")
REPO = Path(__file__).resolve().parents[1]


class Trial(NamedTuple):
    ended_s: float  # seconds after the launch its last epoch ended
    best: float  # its best metric on the holdout
    kept: str  # the checkpoint of that epoch


def launch(system: str, args, seed: int, folder: Path, train_csv: Path) -> float:
    """Run one system into `folder`; the launch time (time.time())."""
    folder.mkdir(parents=True, exist_ok=True)
    if system in ("project", "random_fifo"):
        cmd = [sys.executable, "-m", "search", "run", str(args.space), "--data", str(train_csv), "--time-budget-s",
               str(args.budget), "--seed", str(seed), "--storage-path", str(folder / "results"), "--name", "exp",
               "--no-report", *(["--searcher", "random", "--scheduler", "fifo"] if system == "random_fifo" else []),
               *(["--address", args.address] if args.address else [])]
    else:
        cmd = [sys.executable, "-m", "benchmarks.peers", "--one", system, "--space", str(args.space), "--data",
               str(train_csv), "--budget", str(args.budget), "--first-seed", str(seed), "--out", str(folder),
               *(["--address", args.address] if args.address else [])]
    t0 = time.time()
    with open(folder / "output.log", "w") as log:
        done = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    trained_nothing = "no trial finished an epoch" in (folder / "output.log").read_text()  # scored as no selection
    if done.returncode and not (done.returncode == 1 and trained_nothing):
        raise SystemExit(f"peers: {system} seed {seed} exited {done.returncode}; see {folder / 'output.log'}")
    return t0


def collect_project(folder: Path, t0: float, metric: str) -> tuple[int, dict, float]:
    """(trials started, trials, training CPU-seconds) of a `search run` experiment (a trial that grew
    onto CPUs a stopped one freed trains at more threads: its epochs count at those)."""
    from search.results import find_experiments, trial_histories, trials_table

    table = trials_table(folder / "results" / "exp")
    kept = dict(zip(table["trial_id"], table["checkpoint"]))
    trials, train_s = {}, 0.0
    for exp in find_experiments(folder / "results" / "exp"):
        for trial, h in trial_histories(exp)[1].items():
            if len(h) and metric in h and kept.get(trial):
                trials[trial] = Trial(float(h["timestamp"].max()) - t0, float(h[metric].max()), kept[trial])
                train_s += float((h["epoch_wall_s"] * h["threads"]).sum())
    return len(table), trials, train_s


def collect_peer(folder: Path, t0: float, cpus_per_trial: float) -> tuple[int, dict, float]:
    """(trials started, trials, training CPU-seconds) from a bare peer's trial logs."""
    started, trials, train_s = 0, {}, 0.0
    for lines in sorted((folder / "log").glob("*.jsonl")):
        rows = [json.loads(x) for x in lines.read_text().splitlines() if x.strip()]
        started += 1
        epochs = [r for r in rows if r["epoch"] > 0]
        if epochs:
            trials[lines.stem] = Trial(max(r["time"] for r in epochs) - t0, max(r["value"] for r in epochs),
                                       str(folder / "kept" / f"{lines.stem}.pt"))
            train_s += sum(r["wall_s"] for r in epochs) * cpus_per_trial
    return started, trials, train_s


def anytime(trials: dict, score) -> list[tuple[float, float]]:
    """(seconds, PublicTest score of the selection then) at each trial's end; `score(path)`."""
    points, best = [], None
    for trial in sorted(trials.values()):
        if best is None or trial.best > best.best:
            best = trial
            points.append((trial.ended_s, score(best.kept)))
    return points


class Scorer:
    """PublicTest accuracy of a kept checkpoint, each scored once."""

    def __init__(self, data: str):
        from fer.data import load_data

        self.public = load_data(data).select("PublicTest")
        self.done: dict[str, float] = {}

    def __call__(self, path: str) -> float:
        from fer.checkpoint import Checkpoint
        from fer.evaluate import predict_checkpoint

        if path not in self.done:
            probs = predict_checkpoint(Checkpoint.load(path), self.public.images)
            self.done[path] = float((probs.argmax(1) == self.public.labels).mean())
        return self.done[path]


def trial_slots(args) -> int:
    """Trials at a time, the same for every system: the CPUs here over the space's cpus_per_trial,
    capped by its max_concurrent as `search run` caps it."""
    return max(1, min(math.floor(cpus_here() / args.cpus_per_trial), args.max_concurrent or math.inf))


def run_seed(system: str, seed: int, args, root: Path, train_csv: Path, scorer: Scorer, metric: str) -> dict:
    """One system at one seed: run it unless its result is on disk, then score it; the result."""
    folder = root / f"seed{seed}" / system
    result_file = folder / "result.json"
    if result_file.exists() and not args.rescore:
        return json.loads(result_file.read_text())
    old = json.loads(result_file.read_text()) if result_file.exists() else None
    if old:  # --rescore: the same run, collected and scored again (a result without its launch time keeps its curve)
        t0 = old.get("launched_at", 0.0)
    else:
        if folder.exists():  # an earlier sitting stopped mid-run: start it again
            shutil.rmtree(folder)
        t0 = launch(system, args, seed, folder, train_csv)
    if system in ("project", "random_fifo"):
        started, trials, cpu_s = collect_project(folder, t0, metric)
    else:
        started, trials, cpu_s = collect_peer(folder, t0, args.cpus_per_trial)
    cpus = trial_slots(args) * args.cpus_per_trial
    curve = anytime(trials, scorer) if t0 else old["curve"]
    result = {"system": system, "seed": seed, "public_test": curve[-1][1] if curve else math.nan,
              "curve": curve, "trials_started": started, "trials_with_an_epoch": len(trials),
              "training_share": cpu_s / (args.budget * cpus), "budget_s": args.budget, "cpus": cpus,
              "launched_at": t0}
    result_file.write_text(json.dumps(result, indent=1))
    return result


def table(results: list[dict], systems: list[str]) -> str:
    """The markdown table: mean and spread of the PublicTest score at the deadline, per seed."""
    seeds = sorted({r["seed"] for r in results})
    lines = ["| system | PublicTest at the deadline, mean (sd) | " + " | ".join(f"seed {s}" for s in seeds)
             + " | training share | trials started |", "| --- | ---: |" + " ---: |" * (len(seeds) + 2)]
    for system in systems:
        rows = sorted((r for r in results if r["system"] == system), key=lambda r: r["seed"])
        scores = [r["public_test"] for r in rows]
        lines.append(f"| {system} | {_mean_sd(scores)} | "
                     + " | ".join("none" if math.isnan(s) else f"{s:.4f}" for s in scores)
                     + f" | {statistics.mean(r['training_share'] for r in rows):.0%}"
                     + f" | {statistics.mean(r['trials_started'] for r in rows):.1f} |")
    return "\n".join(lines)


def _mean_sd(scores: list[float]) -> str:
    """Mean (sd) over the seeds whose system selected a model (NaN: no trial ended an epoch in
    the budget), saying how many selected none rather than hiding them or failing."""
    chosen = [s for s in scores if not math.isnan(s)]
    if not chosen:
        return "no selection"
    sd = statistics.stdev(chosen) if len(chosen) > 1 else 0.0
    missed = len(scores) - len(chosen)
    return f"{statistics.mean(chosen):.4f} ({sd:.4f})" + (f", {missed} seed(s) with none" if missed else "")


def plot(results: list[dict], systems: list[str], budget: float, path: Path) -> None:
    """The anytime curves: each system's PublicTest score of its selection against seconds, the
    mean over seeds (a seed counts from its first ended trial on), as a step function."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    grid = [budget * 1.1 * i / 200 for i in range(201)]
    for system in systems:
        curves = [r["curve"] for r in results if r["system"] == system and r["curve"]]
        mean = []
        for t in grid:
            now = [next((s for e, s in reversed(c) if e <= t), None) for c in curves]
            now = [s for s in now if s is not None]
            mean.append(statistics.mean(now) if now else math.nan)
        ax.step(grid, mean, where="post", label=f"{system} ({len(curves)} seeds)")
    ax.axvline(budget, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="seconds since launch", ylabel="PublicTest accuracy of the selection",
           title="Best-so-far selection, scored on PublicTest (mean over seeds)")
    ax.legend(loc="lower right", fontsize=8)
    fig.savefig(path, dpi=110)


def training_copy(data: str, out: Path) -> Path:
    """The data without its PublicTest (and PrivateTest) rows, as a Kaggle CSV: the systems hold
    their validation rows out of Training (train.val_fraction). Written once per data file."""
    import hashlib

    from fer.data import load_data

    path = out / f"training-{hashlib.sha1(str(Path(data).resolve()).encode()).hexdigest()[:10]}.csv.gz"
    if not path.exists():
        faces = load_data(data).select("Training")
        write_kaggle(path, faces.images, faces.labels, ["Training"] * len(faces))
    return path


def one(args) -> int:
    """--one SYSTEM: a bare peer, run by `launch` in a process of its own."""
    from benchmarks.peer_systems import run_optuna, run_tune
    from fer.data import load_data
    from search.space import load_sweeps

    (space,) = load_sweeps(str(args.space))
    faces, slots = load_data(args.data), trial_slots(args)
    if args.one == "ray_tune":
        run_tune(space, faces, args.out, args.budget, args.first_seed, args.cpus_per_trial, slots, args.address)
    else:
        run_optuna(space, faces, args.out, args.budget, args.first_seed, args.cpus_per_trial, slots)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", type=Path, required=True, help="a space file of one sweep (configs/dnn.yaml)")
    p.add_argument("--budget", type=float, required=True, help="wall-clock seconds each system searches")
    p.add_argument("--seeds", type=int, default=5, help="seeds per system (--first-seed, the next ones)")
    p.add_argument("--first-seed", type=int, default=0, help="the first seed (develop on others than reported)")
    p.add_argument("--data", default=str(SHARED_FER), help="a Kaggle FER2013 CSV with Training and PublicTest rows")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}")
    p.add_argument("--out", type=Path, default=Path("peers"), help="where runs and results are kept")
    p.add_argument("--address", default=None, help="a running Ray cluster to run the Ray systems on")
    p.add_argument("--rescore", action="store_true", help="collect and score the runs on disk again, running none")
    p.add_argument("--one", choices=["ray_tune", "optuna"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not (args.budget > 0 and args.seeds >= 1):
        p.error("--budget must be a positive number of seconds and --seeds at least 1")
    from fer.errors import FerError
    from search.space import load_sweeps

    try:
        sweeps = load_sweeps(str(args.space))
    except FerError as e:
        p.error(str(e))
    if len(sweeps) != 1:
        p.error(f"{args.space}: {len(sweeps)} sweeps; the comparison takes a space file of one")
    args.cpus_per_trial, args.max_concurrent = sweeps[0].settings.cpus_per_trial, sweeps[0].settings.max_concurrent
    if args.one:
        return one(args)
    systems = args.systems.split(",")
    if unknown := set(systems) - set(SYSTEMS):
        p.error(f"--systems: unknown {', '.join(sorted(unknown))} (choose from {', '.join(SYSTEMS)})")
    if not Path(args.data).exists():
        p.error(f"--data: {args.data}: no such file")
    root = args.out / f"{args.space.stem}-{args.budget:g}s"
    root.mkdir(parents=True, exist_ok=True)
    train_csv, scorer = training_copy(args.data, args.out), Scorer(args.data)
    results = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for system in systems:
            results.append(run_seed(system, seed, args, root, train_csv, scorer, sweeps[0].settings.metric))
            r = results[-1]
            print(f"seed {seed} {system}: PublicTest {r['public_test']:.4f}, {r['trials_started']} trials, "
                  f"{r['training_share']:.0%} of the budget training", flush=True)
    print()
    header(f"Against the peers: {args.space} at {args.budget:g} s", argv, "benchmarks.peers")
    print(table(results, systems))
    plot(results, systems, args.budget, root / "anytime.png")
    print(f"\nwrote {root / 'anytime.png'}")
    return 0


if __name__ == "__main__":
    cli(main)
