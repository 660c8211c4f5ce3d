"""One table of finished runs, each scored afresh by fer on the same split: the best
checkpoint of each sweep under a results folder, or a single `fer train` checkpoint.

    python -m benchmarks.compare_runs "Optuna + ASHA=/tmp/cnn60/cnn60" "hand-tuned=runs/hand_cnn/checkpoint.pt"

Columns: accuracy, macro-F1 and disgust recall on PublicTest (the selection split;
PrivateTest is never read here), trainable parameters, epochs of the chosen checkpoint,
trials, and the sweep's or run's wall seconds.
"""
from __future__ import annotations

import time
from pathlib import Path

from benchmarks.common import SHARED_FER, cli, header, parser
from fer.checkpoint import Checkpoint
from fer.data import load_data
from fer.evaluate import classification_metrics, predict_checkpoint
from fer.models import count_params


def runs_of(label: str, path: Path) -> list[dict]:
    """[{label, checkpoint, trials, wall_s}] for a checkpoint file or each experiment under a folder."""
    if path.is_file():
        history = Checkpoint.load(path).history
        return [{"label": label, "checkpoint": path, "trials": 1, "wall_s": history[-1].get("elapsed_s")}]
    from search.results import best_trials, trials_table

    table = trials_table(path)
    out = []
    for best in best_trials(path):
        rows = table[table["family"] == best["family"]]
        out.append({"label": f"{label} ({best['family']})", "checkpoint": Path(best["checkpoint"]),
                    "trials": len(rows), "wall_s": _sweep_wall(path, best["family"])})
    return out


def _sweep_wall(root: Path, family: str) -> float | None:
    """Seconds from the sweep's start (sweep.json) to its last result (Tune's per-result timestamp)."""
    from search.results import find_experiments, trial_histories

    for exp in find_experiments(root):
        info, histories = trial_histories(exp)
        if info["family"] != family:
            continue
        started = time.mktime(time.strptime(info["started"], "%Y-%m-%d %H:%M:%S"))
        last = max((h["timestamp"].max() for h in histories.values() if "timestamp" in h), default=None)
        return float(last - started) if last else None
    return None


def score(run: dict, faces) -> dict:
    ckpt = Checkpoint.load(run["checkpoint"])
    probs = predict_checkpoint(ckpt, faces.images)
    m = classification_metrics(faces.labels, probs)
    return {**run, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "disgust_recall": m["per_class"]["disgust"]["recall"], "params": count_params(ckpt.model)["trainable"],
            "epochs": len(ckpt.history), "logit_adjust": ckpt.logit_adjust}


def main() -> None:
    p = parser()
    p.add_argument("runs", nargs="+", help="LABEL=PATH: a results folder or a checkpoint.pt")
    p.add_argument("--data", default=str(SHARED_FER))
    p.add_argument("--split", default="PublicTest")
    args = p.parse_args()
    faces = load_data(args.data).select(args.split)
    header("Run comparison")
    print(f"| run | params | epochs | trials | wall s | {args.split} acc | macro-F1 | disgust recall | tau |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for spec in args.runs:
        label, _, path = spec.rpartition("=")
        for run in runs_of(label or path, Path(path)):
            r = score(run, faces)
            wall = f"{r['wall_s']:.0f}" if r["wall_s"] else "?"
            print(f"| {r['label']} | {r['params']:,} | {r['epochs']} | {r['trials']} | {wall} | {r['accuracy']:.4f} "
                  f"| {r['macro_f1']:.4f} | {r['disgust_recall']:.3f} | {r['logit_adjust']:.2f} |", flush=True)


if __name__ == "__main__":
    cli(main)
