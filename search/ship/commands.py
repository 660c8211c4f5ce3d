"""`search pareto|refit|distill|ensemble` and `search best` within limits: the commands that pick and
ship a model from a finished experiment (search.cli holds their options)."""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from fer.atomic import checkpoint_folder
from fer.command import EXIT_FAILED
from fer.errors import FerError
from fer.remote import is_local


def output_folder(args, default: str | Path) -> Path:
    """--out, else `default` inside the experiment folder DIR. An experiment at a storage URI is
    read, never written to: there --out names the (local) folder to write. A checkpoint already
    there is the user's (an earlier ensemble or refit): replaced only under --overwrite."""
    if args.out:
        out = Path(args.out)
    elif not is_local(args.dir):
        raise FerError(f"{args.dir}: an experiment at a storage URI is only read; give --out, a local folder for "
                       f"what this command writes (e.g. --out {Path(default).as_posix()})")
    else:
        out = Path(args.dir) / default
    return checkpoint_folder(out, args.overwrite)  # checked before the work: a refit trains for long


def best_within_limits(args) -> int:
    """The best trial of each family within the limits; a line for each family with none (exit 1
    when no family has one)."""
    from search.ship.pareto import best_within

    picked, none = best_within(args.dir, args.max_params, args.max_latency_ms)
    if args.json:
        print(json.dumps(picked, default=str))
    for b in [] if args.json else picked:
        print(f"{b['family']}: {b['metric']} {b['value']:.4f}  ({b['params']:,} params"
              + ("" if math.isnan(b["latency_ms"]) else f", {b['latency_ms']:.2f} ms") + f")  {b['checkpoint']}")
    for line in none:
        print(f"search: {line}", file=sys.stderr)
    return 0 if picked else EXIT_FAILED


def cmd_pareto(args) -> int:
    from search.ship.pareto import measured_trials

    table = measured_trials(args.dir, args.family, int8=args.int8)
    if args.json:
        print(table.to_json(orient="records"))
        return 0
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.drop(columns=["checkpoint"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\npareto: optimal for the validation metric against parameters and/or CPU latency at batch 1 "
          "(measured on this machine, with each model's TTA)" + ("; int8: against the int8 ONNX export's latency, "
                                                                 "among those that pass its gate" if args.int8 else ""))
    return 0


def cmd_refit(args) -> int:
    """fer.ship.refit on the best trial of a family: its config, its peak epochs, every row it may see."""
    from fer.checkpoint import Checkpoint
    from fer.data import load_data
    from fer.ship.refit import refit

    out = output_folder(args, Path("refit") / args.family)
    chosen = _best_of(args.dir, args.family)
    ckpt = Checkpoint.load(chosen["checkpoint"])
    source = ckpt.source
    faces = load_data(source)
    print(f"refit {args.family}: trial {chosen['trial_id']} ({chosen['metric']} {chosen['value']:.4f} at epoch "
          f"{ckpt.best_epoch}), trained again on every row but PrivateTest of {source}", flush=True)
    t0 = time.perf_counter()
    new = refit(ckpt, faces, out, on_epoch=lambda m: print(
        f"epoch {m['epoch']:3d}  train loss {m['train_loss']:.4f} acc {m['train_acc']:.4f}  {m['epoch_s']:.1f}s",
        flush=True))
    print(f"wrote {out / 'checkpoint.pt'}: {new.best_epoch} epochs on {' + '.join(new.trained_on)} "
          f"({new.data['train_n']:,} faces) in {time.perf_counter() - t0:.0f}s. It has seen PublicTest: score it "
          f"on PrivateTest only (python -m fer evaluate {out} --split PrivateTest)")
    return 0


def cmd_distill(args) -> int:
    """fer.ship.distill on the best trial of a family, against --teacher; the line at the end
    compares the student before and after, on the split it was selected on."""
    from fer.checkpoint import Checkpoint
    from fer.data import load_data
    from fer.fields import given, make_config
    from fer.ship.distill import DistillSettings, check_pair, distill

    settings = make_config(DistillSettings, given(args, DistillSettings), "distill")
    if settings.weight and not args.teacher:
        raise FerError("--teacher: required with --weight above 0 (e.g. the ensemble `search ensemble` wrote)")
    out = output_folder(args, Path("distill") / args.family)
    chosen = _best_of(args.dir, args.family)
    student = Checkpoint.load(chosen["checkpoint"])
    teacher = Checkpoint.load(args.teacher) if settings.weight else None  # refused here, before any work
    if teacher is not None:
        check_pair(student, teacher, args.teacher)
    metric = chosen["metric"]
    against = (f"against {args.teacher}, weight {settings.weight:g}, temperature {settings.temperature:g}"
               if settings.weight else "on the labels alone (--weight 0)")
    print(f"distill {args.family}: trial {chosen['trial_id']} ({metric} {chosen['value']:.4f} at epoch "
          f"{student.best_epoch}) trained on {against}", flush=True)

    def teacher_done(seconds: float) -> None:
        if settings.weight:
            print(f"teacher: scored the training faces in {seconds:.0f}s", flush=True)

    def epoch_done(m: dict) -> None:
        print(f"epoch {m['epoch']:3d}  train loss {m['train_loss']:.4f}  val acc {m['val_acc']:.4f} macro-F1 "
              f"{m['val_macro_f1']:.4f}  lr {m['lr']:.2e}  {m['epoch_s']:.1f}s", flush=True)

    t0 = time.perf_counter()
    new = distill(student, teacher, load_data(student.source), out, settings, epoch_done, teacher_done)
    before, after = chosen["value"], new.metrics[metric]
    print(f"wrote {out / 'checkpoint.pt'} in {time.perf_counter() - t0:.0f}s: {metric} {after:.4f} at epoch "
          f"{new.best_epoch}, against {before:.4f} before ({after - before:+.4f} on {new.data['val_split']}, "
          f"the split both were selected on)")
    return 0


def _best_of(root: str, family: str) -> dict:
    """The best trial of `family` under `root` (search.results), or an error naming the families there."""
    from search.results import best_trials

    best = {b["family"]: b for b in best_trials(root)}
    if family not in best:
        raise FerError(f"{root}: no {family} trial has a checkpoint (families here: {', '.join(best) or 'none'})")
    return best[family]


def cmd_ensemble(args) -> int:
    from search.ship.ensemble import build_ensemble

    out = output_folder(args, f"ensemble_{args.family}")
    done = build_ensemble(args.dir, args.family, args.size, out, args.snapshots)
    if args.json:
        print(json.dumps(done))
        return 0
    metric = done["metric"]
    print(f"ensemble of {len(done['members'])} of {done['candidates']} "
          f"{'checkpoints' if args.snapshots else 'trials'} ({args.family}), chosen greedily by "
          f"{metric} on {done['split']}:")
    width = max((len(m["member"]) for m in done["members"]), default=0)  # snapshot names are longer
    for m in done["members"]:
        print(f"  {m['member']:<{width}}  weight {m['weight']:.2f}  {metric} {m[metric]:.4f}")
    for name, s in done["scores"].items():
        print(f"{name}: ensemble {s['ensemble']:.4f}, best member ({done['best_member']}) {s['best_member']:.4f}")
    h = done["held_out"]
    print(f"chosen on one half of {done['split']}, scored on the other ({h['halves']} halves): {metric} "
          f"ensemble {h['ensemble']:.4f}, best single {h['best_single']:.4f}; the ensemble ahead on "
          f"{h['ahead']} of {h['halves']}"
          + ("" if h["ensemble"] > h["best_single"] else ": where not chosen, one checkpoint did at least as well"))
    print(f"wrote {done['out']} (scores on {done['split']}, the split it was chosen on, are optimistic)")
    return 0
