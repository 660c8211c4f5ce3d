"""`python -m fer train|evaluate|predict|export|calibrate|ensemble|summary|cache`: train, score and inspect FER2013
classifiers."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from fer.atomic import checkpoint_folder, folder_to_write
from fer.command import EXIT_FAILED, Parser, positive_int, run_command
from fer.errors import FerError
from fer.remote import is_local

EPILOG = ("Exit status: 0 done; 1 an export failed its parity check; 2 bad data, config, checkpoint or option "
          "(one line on stderr); "
          "130 interrupted (train keeps the best checkpoint so far).")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_command("fer", args.func, args)


def _parser() -> argparse.ArgumentParser:
    from fer.config import TrainConfig
    from fer.data.splits import SPLIT_HELP
    from fer.fields import add_options

    p = Parser(prog="python -m fer", description=__doc__, epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one model and write DIR/checkpoint.pt", epilog=EPILOG)
    t.add_argument("--config", help="YAML run config (model:, train:, data:)")
    t.add_argument("--data", help="FER2013 CSV (.csv or .csv.gz), course CSV or image folder; default: synthetic faces")
    t.add_argument("--out", help="output folder (default runs/<config name>)")
    t.add_argument("--overwrite", action="store_true", help="replace the run --out already holds (refused without it)")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.lr=0.01 model.dropout=0.3")
    add_options(t, TrainConfig)  # --epochs, --lr, ...: the `option` fields of TrainConfig
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="accuracy, macro-F1, per-class scores and confusion matrix", epilog=EPILOG)
    e.add_argument("checkpoint")
    e.add_argument("--data", help="data source (default: the one the model was trained on)")
    e.add_argument("--split", help=f"{SPLIT_HELP} (default: PrivateTest, else PublicTest; a source without splits "
                                   "is used whole)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_evaluate)
    r = sub.add_parser("predict", help="label and class probabilities per image", epilog=EPILOG)
    r.add_argument("checkpoint", help="a fer checkpoint, or a file written by `fer export`")
    r.add_argument("images", nargs="+", help="face crops, photos (their faces are found), or one video")
    r.add_argument("--faces", choices=["auto", "all", "none"], default="auto",
                   help="find faces: auto (in images larger than a 100 px crop), all, or none (the whole image)")
    r.add_argument("--annotate", metavar="OUT", help="write the photo with boxes and labels (a folder for several)")
    r.add_argument("--every", type=positive_int, default=1, help="video: classify every N-th frame (default 1)")
    r.add_argument("--trust-torchscript", action="store_true",
                   help="load a TorchScript file, which can run code: only one from a source you trust")
    r.set_defaults(func=cmd_predict)
    x = sub.add_parser("export", help="the model with its preprocessing as ONNX or TorchScript, checked "
                                      "against PyTorch", epilog=EPILOG)
    x.add_argument("checkpoint")
    x.add_argument("--format", choices=["onnx", "torchscript"], required=True)
    x.add_argument("--out", help="output file (default: beside the checkpoint, model.onnx, model.int8.onnx or "
                                 "model.torchscript.pt; needed for a checkpoint at a storage URI)")
    x.add_argument("--int8", action="store_true", help="ONNX only: statically quantized to int8, calibrated on "
                   "training faces, gated on the validation split (fer.ship.quantize)")
    x.set_defaults(func=cmd_export)
    c = sub.add_parser("calibrate", help="fit the checkpoint's temperature on a split (fer.calibration) and "
                                         "save it in the checkpoint", epilog=EPILOG)
    c.add_argument("checkpoint")
    c.add_argument("--data", help="data source (default: the one the model was trained on)")
    c.add_argument("--split", help="the split to fit on (default: the checkpoint's validation split, the one it "
                                   "was selected on)")
    c.set_defaults(func=cmd_calibrate)
    n = sub.add_parser("ensemble", help="average runs of one recipe (other seeds) with equal weights into one "
                                        "checkpoint (fer.ship.ensemble.average_runs)", epilog=EPILOG)
    n.add_argument("runs", nargs="+", help="run folders or checkpoints (or their storage URIs), validated on "
                                           "the same rows")
    n.add_argument("--out", required=True, help="output folder for the ensemble's checkpoint.pt")
    n.add_argument("--overwrite", action="store_true", help="replace the checkpoint --out already holds")
    n.add_argument("--json", action="store_true", help="print one JSON object")
    n.set_defaults(func=cmd_ensemble)
    s = sub.add_parser("summary", help="Keras-style layer table and parameter totals", epilog=EPILOG)
    s.add_argument("model", help="a registered model name (seed_cnn, seed_dnn, ...) or a YAML run config")
    s.set_defaults(func=cmd_summary)
    k = sub.add_parser("cache", help="what the cache folder holds (FER_CACHE_DIR), and clear what can be made again",
                       epilog=EPILOG)
    k.add_argument("--clear", action="store_true", help="remove the parsed data, probabilities and fetched "
                                                        "files (not the measurements, nor the studies of running "
                                                        "sweeps)")
    k.set_defaults(func=cmd_cache)
    return p


def cmd_train(args) -> int:
    from fer.config import TrainConfig, load_run
    from fer.fields import given
    from fer.progress import EpochBar
    from fer.run import train_run

    flags = [f"train.{key}={json.dumps(value)}" for key, value in given(args, TrainConfig).items()]
    overrides = list(args.overrides) + flags  # the flags win over key=value and the config file
    if args.data:
        overrides.append(f"data={args.data}")
    run = load_run(args.config, overrides)
    out = folder_to_write(args.out or Path("runs") / (Path(args.config).stem if args.config else run["model"]["name"]))
    if (out / "checkpoint.pt").exists() and not args.overwrite:  # a Ctrl-C would leave a worse model in its place
        raise FerError(f"{out}: holds a run (checkpoint.pt): give another --out, or --overwrite to replace it")
    print(f"training {run['model']['name']} on {run['data'] or 'synthetic faces'} -> {out}", flush=True)
    total = run["train"]["epochs"]

    def progress(m: dict) -> None:
        ema = (f" (weights {m['val_acc_raw']:.4f}, average {m['val_acc_ema']:.4f}: "
               f"{'average' if m['ema_kept'] else 'weights'} kept)" if "ema_kept" in m else "")  # train.ema
        print(f"epoch {m['epoch']:3d}/{total}  train loss {m['train_loss']:.4f} acc {m['train_acc']:.4f}  "
              f"val loss {m['val_loss']:.4f} acc {m['val_acc']:.4f}{ema} macro-F1 {m['val_macro_f1']:.4f}  "
              f"lr {m['lr']:.2e}  {m['epoch_s']:.1f}s {m['images_per_s']:.0f} img/s", flush=True)

    bar = EpochBar(run["train"]["batch_size"])

    def start(trainer) -> None:
        print(f"precision {trainer.speed.describe()}", flush=True)
        if trainer.speed.warning:
            print(f"fer: warning: {trainer.speed.warning}", file=sys.stderr, flush=True)
        trainer.on_batch = bar

    t0 = time.perf_counter()
    try:
        ckpt = train_run(run, out, on_epoch=progress, on_start=start)  # Ctrl-C: train_run says what it kept
    finally:
        bar.close()
    m, last = ckpt.metrics, ckpt.history[-1]
    if last["run_ends"] == "divergence":
        print(f"fer: warning: training diverged in epoch {last['epoch']} (training loss {last['train_loss']}); "
              f"kept epoch {ckpt.best_epoch}, the best before it", file=sys.stderr, flush=True)
    print(f"best epoch {ckpt.best_epoch}: val acc {m['val_acc']:.4f} macro-F1 {m['val_macro_f1']:.4f} "
          f"({time.perf_counter() - t0:.0f}s); wrote {out / 'checkpoint.pt'}")
    return 0


def cmd_evaluate(args) -> int:
    from fer.checkpoint import Checkpoint
    from fer.data import load_data
    from fer.data.splits import evaluation_split, refuse_seen_split, selection_caveat
    from fer.evaluate import classification_metrics, predict_checkpoint
    from fer.train import pick_device

    ckpt = Checkpoint.load(args.checkpoint)
    faces = load_data(args.data or ckpt.source)
    split = evaluation_split(faces, args.split)
    refuse_seen_split(ckpt.data, split, args.checkpoint)
    faces = faces.select(split)
    device = pick_device()
    probs = predict_checkpoint(ckpt, faces.images, device)
    metrics = classification_metrics(faces.require_labels(), probs)
    metrics["nll"] = metrics.pop("loss")
    caveat = selection_caveat(ckpt.data, faces.source, split)
    metrics = {"data": faces.source, "split": split or "all", "selected_on_this_split": bool(caveat), **metrics}
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(f"{faces.source} [{split or 'all rows'}]: n={metrics['n']}  accuracy {metrics['accuracy']:.4f}  "
          f"macro-F1 {metrics['macro_f1']:.4f}  ECE {metrics['ece']:.4f}  NLL {metrics['nll']:.4f}  "
          f"(temperature {ckpt.temperature:.3g})")
    if caveat:
        print(f"note: {caveat}")
    for name, s in metrics["per_class"].items():
        print(f"  {name:<9} precision {s['precision']:.3f} recall {s['recall']:.3f} f1 {s['f1']:.3f} "
              f"support {s['support']}")
    return 0


def cmd_calibrate(args) -> int:
    """Fit the temperature on a split with the checkpoint's views and prior correction in place,
    print ECE and NLL before and after, and save it in the checkpoint (atomically)."""
    from fer.calibration import recalibrate
    from fer.checkpoint import Checkpoint

    ckpt, faces, where, before, after = recalibrate(Checkpoint.load(args.checkpoint), args.data, args.split)
    path = ckpt.save(ckpt.path)
    print(f"{faces.source} [{where}]: n={len(faces.labels)}  temperature {ckpt.temperature:.3f}  "
          f"ECE {before['ece']:.4f} -> {after['ece']:.4f}  NLL {before['loss']:.4f} -> {after['loss']:.4f}; "
          f"saved in {path}")
    return 0


def cmd_predict(args) -> int:
    from fer.predict import check_inputs, is_video, predict_images, predict_video, predictor

    check_inputs(args.images, args.annotate)
    predict = predictor(args.checkpoint, args.trust_torchscript)
    if is_video(args.images[0]):
        predict_video(predict, args.images[0], args.every)
        return 0
    for line in predict_images(predict, args.images, args.faces, args.annotate):
        print(line)
    return 0


def cmd_export(args) -> int:
    """Export to a temporary file, run it on PARITY_IMAGES faces against PyTorch in fp32, as the
    graph computes, and rename it into place only within the tolerance (NaN never is): else the
    exit status is 1 and whatever --out held is left as it was. A checkpoint that scores in bf16
    (train.precision) is told apart: how far its own scores are from the file's."""
    from fer.checkpoint import Checkpoint
    from fer.errors import FerError
    from fer.ship.export import FORMATS, parity_check, write_checked

    if args.int8 and args.format != "onnx":
        raise FerError("--int8: only with --format onnx (onnxruntime quantizes ONNX graphs)")
    name = f"model{'.int8' if args.int8 else ''}{FORMATS[args.format]}"
    if not args.out and not is_local(args.checkpoint):  # a storage URI is only read: nothing is written beside it
        raise FerError(f"{args.checkpoint}: a checkpoint at a storage URI is only read; give --out, the local file "
                       f"to write (e.g. --out {name})")
    ckpt = Checkpoint.load(args.checkpoint)
    source_file = ckpt.path.resolve()
    out = Path(args.out or source_file.parent / name)
    if out.resolve() == source_file:
        raise FerError(f"--out {out}: that is the checkpoint being exported; name another file")
    if out.is_dir():
        raise FerError(f"--out {out}: a folder; name the file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    check = parity_check(ckpt, lambda line: print(line, flush=True))
    if args.int8:
        return _export_int8(ckpt, out, check)
    if not write_checked(ckpt, args.format, out, check):
        kept = f"; {out} is as it was" if out.exists() else ""
        print(f"fer: export failed the parity check; nothing written{kept}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {out} ({args.format}, {out.stat().st_size / 2**20:.1f} MiB): uint8 (N, 48, 48) in, "
          f"probabilities (N, 7) out")
    return 0


def _export_int8(ckpt, out: Path, check) -> int:
    """The fp32 ONNX file checked against PyTorch, then quantized, gated and measured (fer.ship.quantize);
    both files only in a temporary folder beside `out` until the int8 one passes."""
    import tempfile

    from fer.ship.export import load_exported, write_checked
    from fer.ship.quantize import checkpoint_faces, write_int8

    calibration, val = checkpoint_faces(ckpt)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as d:
        fp32 = Path(d) / "model.onnx"
        if not write_checked(ckpt, "onnx", fp32, check):
            print("fer: the fp32 graph failed the parity check; nothing written", file=sys.stderr)
            return EXIT_FAILED
        gate, cost32, cost8 = write_int8(fp32, out, calibration, val.images, val.require_labels(), load_exported)
    print(gate.line())
    for name, c in (("fp32", cost32), ("int8", cost8)):
        print(f"  {name}: {c.mib:.2f} MiB, {c.ms_per_face:.2f} ms/face at batch 1, {c.faces_per_s:.0f} faces/s at "
              "batch 256 (onnxruntime, this CPU)")
    if not gate.passed:
        print("fer: the int8 model failed its gate; nothing written", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {out} (int8 ONNX, QDQ, per-channel weights, calibrated on {len(calibration)} training faces)")
    return 0


def cmd_ensemble(args) -> int:
    from fer.ship.ensemble import average_runs

    out = checkpoint_folder(args.out, args.overwrite)
    done = average_runs(args.runs, out)
    if args.json:
        print(json.dumps(done))
        return 0
    width = max(len(m["member"]) for m in done["members"])
    print(f"equal-weight ensemble of {len(done['members'])} runs, scored on {done['split']}:")
    for m in done["members"]:
        print(f"  {m['member']:<{width}}  accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}")
    e = done["ensemble"]
    print(f"  {'ensemble':<{width}}  accuracy {e['accuracy']:.4f}  macro-F1 {e['macro_f1']:.4f}")
    print(f"wrote {done['out']} (no member chosen on {done['split']}: its score there is as optimistic as the "
          f"runs' own best epochs)")
    return 0


def cmd_summary(args) -> int:
    from fer.config import load_run
    from fer.models import create_model, list_models, model_from_spec, summary
    from fer.models.contract import input_side

    if args.model in list_models():
        name, model = args.model, create_model(args.model)
    else:
        run = load_run(args.model)
        name = Path(args.model).stem
        model = model_from_spec(run["model"])
    print(summary(model, name, input_side(model)))
    return 0


def cmd_cache(args) -> int:
    """One line per kind of entry, the limit, and what --clear removed."""
    from fer.data.cache import PROBS_PREFIX, default_cache_dir, entries, max_bytes

    root = default_cache_dir()
    held = entries(root)
    if args.clear:
        for path, _, _ in held:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        print(f"cleared {len(held)} entries ({sum(size for _, size, _ in held) / 2**20:.1f} MiB) from {root}")
        return 0
    arrays = [(path, size) for path, size, _ in held if path.suffix == ".npz"]
    probs = [size for path, size in arrays if path.name.startswith(PROBS_PREFIX)]
    parsed = [size for path, size in arrays if not path.name.startswith(PROBS_PREFIX)]
    fetched = [size for path, size, _ in held if path.suffix != ".npz"]
    studies = [f.stat().st_size for f in (root / "remote" / "studies").rglob("*") if f.is_file()]
    print(f"{root}: limit {max_bytes() / 2**30:.2f} GiB (FER_CACHE_MAX_BYTES) on what can be made again")
    for what, sizes in (("parsed datasets", parsed), ("checkpoints' validation probabilities", probs),
                        ("files fetched from storage URIs", fetched),
                        ("studies of sweeps on a storage URI, staged here (never evicted)", studies)):
        print(f"  {what}: {len(sizes)}, {sum(sizes) / 2**20:.1f} MiB")
    return 0
