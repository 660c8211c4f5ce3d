"""What post-hoc prior correction (`train.logit_adjust: tau`) trades, on one checkpoint's
PublicTest predictions: accuracy, macro-F1 and disgust recall for each tau.

    python -m benchmarks.prior_correction CHECKPOINT [CHECKPOINT ...]

The network runs once per checkpoint (its own TTA and precision); each tau only reweights
the averaged probabilities. The row marked * is the tau that `train.balance_within: 0.01`
would pick here (the largest within 1 point of tau 0's accuracy). PrivateTest is never read.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from analysis.metrics import confusion
from benchmarks.common import SHARED_FER, cli, header, parser
from fer.calibration import adjust_for_prior, balancing_tau
from fer.checkpoint import Checkpoint
from fer.data import load_data
from fer.evaluate import predict_checkpoint

TAUS = np.round(np.linspace(0.0, 1.0, 11), 2)


def main() -> None:
    p = parser()
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--data", default=str(SHARED_FER))
    args = p.parse_args()
    faces = load_data(args.data).select("PublicTest")
    header(f"Prior correction on PublicTest ({len(faces)} images)")
    for path in args.checkpoints:
        ckpt = Checkpoint.load(path)
        prep = ckpt.prep
        probs = predict_checkpoint(ckpt, faces.images, adjusted=False)
        picked = balancing_tau(faces.labels, probs, prep.class_prior, 0.01, TAUS)
        print(f"{path} (tau it was scored with: {prep.logit_adjust:g})\n")
        print("| tau | accuracy | macro-F1 | disgust recall | classes never predicted |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for tau in TAUS:
            c = confusion(faces.labels, adjust_for_prior(probs, replace(prep, logit_adjust=tau)).argmax(1))
            mark = " *" if tau == picked else ""
            print(f"| {tau:.1f}{mark} | {c['accuracy']:.4f} | {c['macro_f1']:.4f} | "
                  f"{c['per_class']['disgust']['recall']:.3f} | {len(c['never_predicted'])} |")
        print()


if __name__ == "__main__":
    cli(main)
