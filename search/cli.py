"""`python -m search run|best|table|pareto|ensemble|refit|distill`: Ray Tune + Optuna sweeps over fer's model
families, and picking and shipping their best trials."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from fer.atomic import write_text
from fer.command import EXIT_FAILED, LazyChoices, Parser, positive_float, positive_int, run_command
from fer.errors import FerError
from fer.fields import add_options, given
from fer.ship.distill import DistillSettings
from search.settings import Settings
from search.ship.commands import best_within_limits, cmd_distill, cmd_ensemble, cmd_pareto, cmd_refit
from search.uri import check_name, is_database, is_local

EPILOG = ("Exit status: 0 done; 1 some trials failed after their retries (one line each on stderr), or the "
          "storage filled up (one line: how to resume); "
          "2 bad input (one line on stderr, nothing written); 130 interrupted (the line says how to --resume).")

READ_STUDY_HELP = ("the study database of sweeps whose study lived on a server (their trials imported by a warm "
                   "start are listed): a URL a results folder names is never opened by itself")
QUICKSTART = Path(__file__).resolve().parent / "spaces" / "quickstart.yaml"  # package data: found when installed


def _families() -> list[str]:
    from fer.models.registry import family_names  # (imports torch: only when --family is used)

    return family_names(searchable_only=True)


def main(argv: list[str] | None = None, report: Callable[[str, Path], object] | None = None) -> int:
    """`report(experiment_folder, out_folder)` ends `run` (search/__main__.py passes the analysis
    report: search itself never imports analysis); without it, `run` prints how to see the best.
    A report with a `prepare()` method is told when the sweeps start (it imports meanwhile)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    args.argv, args.report = argv, report
    return run_command("search", args.func, args)


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m search", description=__doc__, epilog=EPILOG)
    families = LazyChoices(_families)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the sweeps of one or more space files (default: the quickstart space, "
                            "search/spaces/quickstart.yaml)",
                       description="Run the sweeps of space files. Options left out take the space file's "
                                   "settings: value, else the default of search.settings.Settings.", epilog=EPILOG)
    r.add_argument("configs", nargs="*", help="space YAML files")
    r.add_argument("--data", help="data for every sweep (default: each file's data:, else synthetic faces)")
    add_options(r.add_argument_group("sweep settings (override the space file's settings:)"), Settings)
    r.add_argument("--no-warm-start", action="store_true", help="ignore the space's warm_start points")
    r.add_argument("--address", help="join a Ray cluster: auto, or ray://HOST:10001")
    r.add_argument("--storage-path", default="results", help="folder or URI (s3://...) for experiments")
    r.add_argument("--name", help="experiment name (default: the first config's name)")
    r.add_argument("--optuna-storage", metavar="URL",
                   help="SQLAlchemy URL of the Optuna study database (default: optuna.db in each sweep's folder; "
                        "on a cluster e.g. postgresql://USER@HEAD:5432/DB)")
    r.add_argument("--warm-start-from", metavar="SOURCE",
                   help="an experiment (a folder or a storage URI such as s3://...) or a study database URL whose "
                        "finished trials inform the new studies")
    r.add_argument("--warm-start-study", metavar="NAME", help="the study of SOURCE to import (default: by family)")
    r.add_argument("--resume", action="store_true", help="continue an interrupted experiment of the same name")
    r.add_argument("--seed", type=int, default=0, help="seed of the searcher's sampler (trials keep their own)")
    r.add_argument("--no-report", action="store_true", help="skip the analysis report at the end")
    r.add_argument("--verbose", action="store_true", help="show Ray's and Optuna's own logs and worker output")
    r.set_defaults(func=cmd_run)
    b = sub.add_parser("best", help="best trial of each family under DIR, a folder or a storage URI (within limits, "
                            "if given)", epilog=EPILOG)
    b.add_argument("dir")
    b.add_argument("--json", action="store_true")
    b.add_argument("--max-params", type=positive_int, help="only trials with at most this many parameters")
    b.add_argument("--max-latency-ms", type=positive_float,
                   help="only trials whose CPU latency at batch 1, with their TTA, is at most this (measured here)")
    b.set_defaults(func=cmd_best)
    pa = sub.add_parser("pareto", help="every trial with parameters and CPU latency, Pareto-optimal ones marked",
                        epilog=EPILOG)
    pa.add_argument("dir")
    pa.add_argument("--family", choices=families, metavar="FAMILY", help="only this family's trials (%(choices)s)")
    pa.add_argument("--json", action="store_true")
    pa.add_argument("--int8", action="store_true", help="also each checkpoint's int8 ONNX export: its latency and "
                                                        "gate (as fer export --int8), measured once per checkpoint")
    pa.set_defaults(func=cmd_pareto)
    rf = sub.add_parser("refit", help="train the best trial's config again on Training + PublicTest", epilog=EPILOG)
    rf.add_argument("dir")
    rf.add_argument("--family", choices=families, metavar="FAMILY", default="cnn",
                    help="the family whose best trial is refit (%(choices)s; default %(default)s)")
    rf.add_argument("--out", help="output folder (default DIR/refit/FAMILY; needed when DIR is a storage URI)")
    rf.add_argument("--overwrite", action="store_true", help="replace the checkpoint --out already holds "
                                                           "(refused without it)")
    rf.set_defaults(func=cmd_refit)
    di = sub.add_parser("distill", help="go on training the best trial against a teacher's probabilities (an "
                                        "ensemble's, say) as well as the labels", epilog=EPILOG)
    di.add_argument("dir")
    di.add_argument("--teacher", help="a fer checkpoint or `search ensemble` output, trained on the same data "
                                      "(not needed with --weight 0)")
    di.add_argument("--family", choices=families, metavar="FAMILY", default="cnn",
                    help="the family whose best trial is the student (%(choices)s; default %(default)s)")
    di.add_argument("--out", help="output folder (default DIR/distill/FAMILY; needed when DIR is a storage URI)")
    di.add_argument("--overwrite", action="store_true", help="replace the checkpoint --out already holds "
                                                           "(refused without it)")
    add_options(di, DistillSettings)  # --weight, --temperature, --lr-scale, --epochs, --time-budget-s
    di.set_defaults(func=cmd_distill)
    en = sub.add_parser("ensemble", help="greedy ensemble of the trials' best checkpoints (Caruana et al. 2004)",
                        epilog=EPILOG)
    en.add_argument("dir")
    en.add_argument("--size", type=positive_int, default=10, help="greedy steps (members may repeat)")
    en.add_argument("--family", choices=LazyChoices(lambda: [*_families(), "all"]), metavar="FAMILY", default="all",
                    help="the members' family (%(choices)s; default %(default)s)")
    en.add_argument("--out", help="output folder (default DIR/ensemble_FAMILY; needed when DIR is a storage URI)")
    en.add_argument("--overwrite", action="store_true", help="replace the checkpoint --out already holds "
                                                           "(refused without it)")
    en.add_argument("--snapshots", action="store_true",
                    help="offer every checkpoint a trial kept, not only its best (snapshot ensembles; the space's "
                         "keep_checkpoints says how many Tune keeps)")
    en.add_argument("--json", action="store_true")
    en.set_defaults(func=cmd_ensemble)
    t = sub.add_parser("table", help="every trial under DIR, one row each", epilog=EPILOG)
    t.add_argument("dir")
    t.add_argument("--csv", help="also write the table to this CSV file")
    t.add_argument("--optuna-storage", metavar="URL", help=READ_STUDY_HELP)
    t.set_defaults(func=cmd_table)
    return p


def _settings_overrides(args) -> dict:
    out = given(args, Settings)
    if getattr(args, "no_warm_start", False):
        out["warm_start"] = []
    return out


def cmd_run(args) -> int:
    """Check everything, then run each sweep; Ctrl-C or SIGTERM stops them all (exit 130)."""
    from search.space import load_sweeps
    from search.storage import experiment_lock, holds_experiment
    from search.sweep import experiment_path

    refuse_passwords(args)
    configs = args.configs or [str(QUICKSTART)]
    spaces = [s for c in configs for s in load_sweeps(c, _settings_overrides(args))]
    name = check_name(args.name or Path(configs[0]).stem, "--name" if args.name else f"{configs[0]}: its file name")
    storage = str(Path(args.storage_path).resolve()) if is_local(args.storage_path) else args.storage_path
    names = [space.name for space in spaces]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        raise FerError(f"two sweeps are named {twice!r} and would share {storage}/{name}/{twice}: give each space "
                       "file a distinct `name:`, or run them under different --name")
    with experiment_lock(f"{storage}/{name}"):  # one `search run` of this name at a time
        for space in spaces:
            if holds_experiment(experiment_path(storage, name, space)) and not args.resume:
                raise FerError(f"{experiment_path(storage, name, space)}: an experiment named {name!r} is already "
                               "there: continue it with --resume, or start another with --name")
        args.imported = _study_checks(args, spaces, name)
        return _interruptible(args, spaces, name, storage)


def refuse_passwords(args) -> None:
    """A study URL on the command line holds no password: the command line is recorded where
    others read it (Ray keeps a driver's as its job's entrypoint, `ray list jobs`; `ps`)."""
    from search.study import mask_passwords, without_password

    for flag, url in (("--optuna-storage", args.optuna_storage), ("--warm-start-from", args.warm_start_from)):
        if url and is_database(url) and without_password(url)[1] is not None:
            raise FerError(f"{flag} {mask_passwords(url)}: a password in the URL would be recorded with the command "
                           "line (Ray's job entrypoint, ps): give it in PGPASSWORD or ~/.pgpass (MySQL: ~/.my.cnf) "
                           f"and the URL without it, {without_password(url)[0]}")


def _interruptible(args, spaces, name: str, storage: str) -> int:
    """Run the sweeps; after Ctrl-C, SIGTERM or a failed storage, say how to resume (passwords hidden)."""
    from search.engine import StorageFailed
    from search.study import mask_passwords

    whole = "python -m search " + shlex.join([a for a in args.argv if a != "--resume"] + ["--resume"])
    masked = mask_passwords(whole)
    resume = masked + ("" if masked == whole else " (the password where *** stands, or in PGPASSWORD or ~/.pgpass)")
    try:
        return _run_sweeps(args, spaces, name, storage)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_interrupted(storage, name, spaces, resume)) from None
    except StorageFailed as e:  # search.engine's
        print(f"search: the storage {storage}/{name} failed ({e}); the sweeps' state is saved: once it has space "
              f"again, continue with: {resume}", file=sys.stderr)
        return EXIT_FAILED


def _interrupted(storage: str, name: str, spaces, resume: str) -> str:
    """The interrupt's line. A sweep stopped in its first seconds, before Tune first saved its
    state, has nothing to continue: its resume starts it over (search.sweep says so), and the line
    says so now rather than promising saved state. (Local folders only: a storage URI is not
    asked while the command is being stopped.)"""
    from ray import tune

    from search.sweep import experiment_path

    paths = {space.name: experiment_path(storage, name, space) for space in spaces} if is_local(storage) else {}
    over = [n for n, path in paths.items() if Path(path).is_dir() and not tune.Tuner.can_restore(path)]
    if over:
        return (f"sweep {', '.join(over)} stopped before its state was first saved, so a resume starts it over; "
                f"continue with: {resume}")
    return f"the sweeps' state is saved; continue with: {resume}"


def _study_checks(args, spaces, name: str) -> dict[str, list]:
    """Before Ray starts: the study storage opens and holds no study of these sweeps (unless
    resuming); the warm start's trials, per sweep, with one line each on what was imported."""
    from search.study import refuse_existing_study
    from search.sweep import study_name

    if args.optuna_storage and not args.resume:
        for space in spaces:
            refuse_existing_study(args.optuna_storage, study_name(name, space))
    if not args.warm_start_from or args.resume:  # a resumed study has its imported trials already
        return {}
    from search.warmstart import import_plan

    imported = {}
    for space in spaces:
        imported[space.name], line = import_plan(args.warm_start_from, args.warm_start_study, space)
        print(f"sweep {name}/{space.name}: {line}", flush=True)
    return imported


def _run_sweeps(args, spaces, name: str, storage: str) -> int:
    from search.engine import Request, run_experiment

    request = Request(name=name, storage=storage, data=args.data, address=args.address, seed=args.seed,
                      resume=args.resume, optuna_storage=args.optuna_storage, imported=args.imported,
                      verbose=args.verbose)
    if args.report is not None and not args.no_report and is_local(storage) and hasattr(args.report, "prepare"):
        args.report.prepare()  # the report's imports, while the sweeps run
    outcome = run_experiment(spaces, request, on_sweep=_print_sweep, say=lambda line: print(line, flush=True))
    try:
        return _after_sweeps(args, outcome)
    finally:
        outcome.wait_for_ray()  # (Ray stops while the report is written; a Ctrl-C there waits for it too)


def _after_sweeps(args, outcome) -> int:
    """The end of `run`: the failed trials' lines, then the report or how to get one."""
    from search.study import mask_passwords

    root = outcome.root
    print(f"done in {outcome.seconds:.0f}s; results in {root}")
    for line in outcome.failed:
        print(f"search: {line}", file=sys.stderr)
    if not outcome.trained:  # no model to report or pick: the lines on stderr say why
        return EXIT_FAILED if outcome.failed else 0
    if args.report is None or args.no_report or not is_local(root):
        print(f"best models: python -m search best {root}")
        if args.report is not None and not args.no_report:  # a storage URI: the report is written locally
            named = f" --optuna-storage {mask_passwords(args.optuna_storage)}" if args.optuna_storage else ""
            print(f"report: python -m analysis report {root}{named} --out report")
    else:
        args.report(root, Path(root) / "report", args.optuna_storage)
        print(f"report: {Path(root) / 'report' / 'report.html'}")
    return EXIT_FAILED if outcome.failed else 0


def _print_sweep(sweep) -> None:
    """A sweep's table, then the use of its budget (its last line)."""
    if sweep.table is None:
        print(f"\n{sweep.name}: no trials ran", flush=True)
    else:
        table, metric = sweep.table, sweep.metric
        print(f"\n{sweep.name}: {len(table)} trials, best {metric} {table[metric].max():.4f}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"), flush=True)
    if sweep.ended_before:  # (its budget line would read "0% spent training, 100% idle")
        print(f"{sweep.name}: every trial had ended before this --resume; nothing ran", flush=True)
    elif sweep.budget is not None:
        print(f"{sweep.name} {sweep.budget.line()}", flush=True)


def cmd_best(args) -> int:
    from search.results import best_trials

    if args.max_params or args.max_latency_ms:
        return best_within_limits(args)
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

    table = trials_table(args.dir, args.optuna_storage)
    unread_studies(args.dir, args.optuna_storage)
    if args.csv:
        write_text(args.csv, table.to_csv(index=False))
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.drop(columns=["checkpoint"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


def unread_studies(root: str, given: str | None) -> None:
    """One line per sweep whose study lives on a server the user did not name (never opened)."""
    from search.results import find_experiments, study_location
    from search.study import mask_passwords

    for exp in [] if given else find_experiments(root):
        _, server = study_location(exp)
        if server:
            print(f"search: {exp}: its study is on {mask_passwords(server)}, not opened (a results folder never "
                  "picks a server): give --optuna-storage URL to read it", file=sys.stderr)
