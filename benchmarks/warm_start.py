"""Warm against cold: the best validation score each sweep had reached 5, 10 and 20 minutes
after it started, from the scores its trials reported per epoch (on the shared FER2013 the
validation split is PublicTest; PrivateTest is never read).

    python -m benchmarks.warm_start "cold=/tmp/ws/cold/dnn" "warm=/tmp/ws/warm/dnn" --minutes 5 10 20
"""
from __future__ import annotations

import argparse
import time

from benchmarks.common import cli, header, parser


def best_by_minute(exp: str, minutes: list[float]) -> dict:
    """{minute: best metric reported by then}, with the sweep's trial counts."""
    from search.results import load_study, trial_histories

    info, histories = trial_histories(exp)
    started = time.mktime(time.strptime(info["started"], "%Y-%m-%d %H:%M:%S"))
    metric = info["metric"]
    rows = [(t, v) for h in histories.values() if metric in h for t, v in zip(h["timestamp"], h[metric])]
    study = load_study(exp, info)
    imported = sum("imported_from" in t.user_attrs for t in study.trials) if study else 0
    out = {"metric": metric, "trials": len(histories), "imported": imported}
    for m in minutes:
        seen = [v for t, v in rows if t - started <= m * 60]
        out[m] = max(seen) if seen else float("nan")
    return out


def main() -> None:
    p = parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="LABEL=SWEEP_FOLDER (results/<name>/<sweep>)")
    p.add_argument("--minutes", type=float, nargs="+", default=[5, 10, 20])
    args = p.parse_args()
    header("Warm-started against cold sweeps")
    cols = " | ".join(f"best at {m:g} min" for m in args.minutes)
    print(f"| sweep | trials run | trials imported | {cols} |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in args.minutes) + " |")
    for run in args.runs:
        label, path = run.split("=", 1)
        r = best_by_minute(path, args.minutes)
        print(f"| {label} ({r['metric']}) | {r['trials']} | {r['imported']} | "
              + " | ".join(f"{r[m]:.4f}" for m in args.minutes) + " |")


if __name__ == "__main__":
    cli(main)
