"""`python -m analysis report SOURCE`: figures, metrics.json and report.html for trained models."""
from __future__ import annotations

import argparse

from fer.command import Parser, run_command
from fer.data.splits import SPLIT_HELP

EPILOG = ("Exit status: 0 done; 2 bad source or option (one line on stderr; checked before any work, "
          "nothing written); 130 interrupted.")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_command("analysis", args.func, args)


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m analysis", description=__doc__, epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="analyse one checkpoint or the best CNN and DNN of an experiment folder",
                       epilog=EPILOG)
    r.add_argument("source", help="a checkpoint (file or run folder) or a search experiment folder")
    r.add_argument("--data", help="images to judge on (default: the model's own validation data)")
    r.add_argument("--split", help=SPLIT_HELP)
    r.add_argument("--out", default="report", help="output folder (default ./report): a new or empty one, or "
                   "an earlier report's, which is replaced")
    r.add_argument("--images", type=_indices, help="comma-separated image indices for the saliency figure, e.g. 356,12")
    r.add_argument("--layer", help="layer whose outputs activations.png shows (default: the first activation)")
    r.add_argument("--filters-layer", help="conv layer whose filters are visualised by activation maximisation "
                                           "(default: a middle conv layer)")
    r.add_argument("--optuna-storage", metavar="URL",
                   help="the study database of sweeps whose study lived on a server, for the sweep figures: a URL "
                        "a results folder names is never opened by itself")
    r.set_defaults(func=cmd_report)
    return p


def _indices(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def cmd_report(args) -> int:
    import matplotlib

    matplotlib.use("Agg")  # files only: Optuna's figures go through pyplot, which must not open windows
    from analysis.report import make_report

    metrics = make_report(args.source, args.data, args.split, args.out, args.images, args.layer, args.filters_layer,
                          study_storage=args.optuna_storage)
    for name, m in metrics["models"].items():
        print(f"{name}: accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f} on {m['n']} images")
    print(f"wrote {args.out}/report.html ({metrics['seconds']:.1f}s)")
    return 0
