"""`python -m search run|best|table`: Ray Tune + Optuna sweeps over fer's model families."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from fer.errors import FerError

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except FerError as e:
        print(f"search: error: {e}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the sweeps of one or more space files (default: configs/quickstart.yaml)")
    r.add_argument("configs", nargs="*", help="space YAML files")
    r.add_argument("--data", help="data for every sweep (default: each file's data:, else synthetic faces)")
    r.add_argument("--num-samples", type=int, help="trials per sweep")
    r.add_argument("--max-epochs", type=int, help="epochs per trial (ASHA's max_t)")
    r.add_argument("--grace-period", type=int, help="epochs before ASHA may stop a trial")
    r.add_argument("--time-budget-s", type=float, help="wall-clock budget per sweep")
    r.add_argument("--explore-share", type=float, help="share of --time-budget-s in which new trials may start")
    r.add_argument("--metric", choices=["val_acc", "val_macro_f1"])
    r.add_argument("--searcher", choices=["tpe", "random"], help="Optuna's sampler (random: plain random search)")
    r.add_argument("--scheduler", choices=["asha", "fifo"], help="fifo runs every trial to the end")
    r.add_argument("--no-warm-start", action="store_true", help="ignore the space's warm_start points")
    r.add_argument("--cpus-per-trial", type=float)
    r.add_argument("--gpus-per-trial", type=float, help="fractions pack trials: 0.25 runs four per GPU")
    r.add_argument("--max-concurrent", type=int)
    r.add_argument("--address", help="join a Ray cluster: auto, or ray://HOST:10001")
    r.add_argument("--storage-path", default="results", help="folder or URI (s3://...) for experiments")
    r.add_argument("--name", help="experiment name (default: the first config's name)")
    r.add_argument("--resume", action="store_true", help="continue an interrupted experiment of the same name")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-report", action="store_true", help="skip the analysis report at the end")
    r.set_defaults(func=cmd_run)
    b = sub.add_parser("best", help="best trial of each family under DIR")
    b.add_argument("dir")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_best)
    t = sub.add_parser("table", help="every trial under DIR, one row each")
    t.add_argument("dir")
    t.add_argument("--csv", help="also write the table to this CSV file")
    t.set_defaults(func=cmd_table)
    return p


def _settings_overrides(args) -> dict:
    names = ("num_samples", "max_epochs", "grace_period", "time_budget_s", "metric", "cpus_per_trial", "gpus_per_trial",
             "max_concurrent", "searcher", "scheduler", "explore_share")
    out = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if getattr(args, "no_warm_start", False):
        out["warm_start"] = []
    return out


def cmd_run(args) -> int:
    from search.space import load_sweeps

    configs = args.configs or [str(QUICKSTART)]
    spaces = [s for c in configs for s in load_sweeps(c, _settings_overrides(args))]
    name = args.name or Path(configs[0]).stem
    storage = args.storage_path if "://" in args.storage_path else str(Path(args.storage_path).resolve())
    t0 = time.perf_counter()
    _init_ray(args.address)
    from fer.data import load_data
    from search.sweep import run_sweep
    from search.trainable import train_fer

    datasets = {}
    for space in spaces:
        source = args.data or space.data
        if source not in datasets:  # parsed once per source; trials read it from the object store
            datasets[source] = load_data(source)
        print(f"sweep {name}/{space.name}: {space.settings.num_samples} trials of {space.family} on "
              f"{source or 'synthetic faces'}, {space.settings.max_epochs} epochs max", flush=True)
        grid = run_sweep(space, train_fer, storage, name, args.seed, args.resume, faces=datasets[source])
        _print_summary(grid, space)
    root = f"{storage}/{name}"
    print(f"done in {time.perf_counter() - t0:.0f}s; results in {root}")
    if not args.no_report and "://" not in root:
        _report(root)
    return 0


def _init_ray(address: str | None) -> None:
    import ray

    # One progress line per epoch comes from search.progress; these only repeat it.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=True,
                 ignore_reinit_error=True, configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise FerError(f"--address {address}: cannot join the Ray cluster ({str(e).splitlines()[0]})") from None


def _print_summary(grid, space) -> None:
    import pandas as pd

    metric = space.settings.metric
    rows = []
    for r in grid:
        h = r.metrics_dataframe
        rows.append({"trial": r.metrics.get("trial_id", r.path.rsplit("/", 1)[-1][:20]) if r.metrics else "?",
                     "status": "ERROR" if r.error else "OK",
                     "epochs": int(h["training_iteration"].max()) if h is not None and len(h) else 0,
                     metric: h[metric].max() if h is not None and metric in h else float("nan"),
                     "params": r.metrics.get("num_params") if r.metrics else None,
                     "lr": r.config.get("train", {}).get("lr"),
                     "optimizer": r.config.get("train", {}).get("optimizer")})
    table = pd.DataFrame(rows).astype({"params": "Int64"}).sort_values(metric, ascending=False)
    print(f"\n{space.name}: {len(rows)} trials, best {metric} {table[metric].max():.4f}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"), flush=True)


def _report(root: str) -> None:
    try:
        from analysis.report import make_report
    except ImportError:
        print(f"best models: python -m search best {root}")
        return
    out = Path(root) / "report"
    make_report(root, out=out)
    print(f"report: {out / 'report.html'}")


def cmd_best(args) -> int:
    from search.results import best_trials

    best = best_trials(args.dir)
    if args.json:
        print(json.dumps(best, default=str))
        return 0
    for b in best:
        print(f"{b['family']}: {b['metric']} {b['value']:.4f}  ({b['num_params']:,} params)  {b['checkpoint']}")
        print(f"  {json.dumps(b['params'])}")
    return 0


def cmd_table(args) -> int:
    from search.results import trials_table

    table = trials_table(args.dir)
    if args.csv:
        table.to_csv(args.csv, index=False)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.drop(columns=["checkpoint"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0
