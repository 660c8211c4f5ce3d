"""`python -m analysis report SOURCE`: figures, metrics.json and report.html for trained models."""
from __future__ import annotations

import argparse
import sys

from fer.errors import FerError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="analyse one checkpoint or the best CNN and DNN of an experiment folder")
    r.add_argument("source", help="a checkpoint (file or run folder) or a search experiment folder")
    r.add_argument("--data", help="images to judge on (default: the model's own validation data)")
    r.add_argument("--split", help="Training/PublicTest/PrivateTest or train/validation/test")
    r.add_argument("--out", default="report", help="output folder (default ./report)")
    r.add_argument("--images", help="comma-separated image indices for the saliency figure, e.g. 356,12")
    r.add_argument("--layer", help="layer whose outputs activations.png shows (default: the first activation)")
    r.add_argument("--filters-layer", help="conv layer whose filters are visualised by activation maximisation "
                                           "(default: a middle conv layer)")
    args = p.parse_args(argv)
    try:
        images = [int(v) for v in args.images.split(",")] if args.images else None
    except ValueError:
        print(f"analysis: error: --images: expected comma-separated integers, got {args.images!r}", file=sys.stderr)
        return 2
    from analysis.report import make_report

    try:
        metrics = make_report(args.source, args.data, args.split, args.out, images, args.layer, args.filters_layer)
    except FerError as e:
        print(f"analysis: error: {e}", file=sys.stderr)
        return 2
    for name, m in metrics["models"].items():
        print(f"{name}: accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f} on {m['n']} images")
    print(f"wrote {args.out}/report.html ({metrics['seconds']:.1f}s)")
    return 0
