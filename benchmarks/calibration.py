"""Calibration of checkpoints on PublicTest: ECE (15 bins) and NLL at temperature 1 and after
temperature scaling (fer.calibration), with the temperature cross-fitted.

    python -m benchmarks.calibration "best CNN=results/x/cnn/trial_a/checkpoint_000031" "ensemble=..."

A checkpoint's temperature is fitted on PublicTest, the split it was selected on, so measuring
it there would be optimistic. Here PublicTest is split in two halves (seeded, stratified): the
temperature fitted on each half scores the other, and the figures are those of the pooled
out-of-fold probabilities. The network runs once per checkpoint (its TTA, precision and prior
correction as its run scored them). PrivateTest is never read.
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import SHARED_FER, cli, header, parser
from fer.calibration import expected_calibration_error, fit_temperature, nll, prior_correction, scaled_probabilities
from fer.checkpoint import Checkpoint
from fer.data import load_data
from fer.evaluate import view_logits


def halves(labels: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """Two stratified halves of the rows."""
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed).split(labels, labels)
    return [test for _, test in folds]


def cross_fitted(logits: np.ndarray, labels: np.ndarray, factor) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold probabilities (N, 7) and the temperature fitted on each half."""
    probs, temps = np.zeros(logits.shape[1:]), []
    parts = halves(labels)
    for fit_on, score_on in ((parts[0], parts[1]), (parts[1], parts[0])):
        t = fit_temperature(logits[:, fit_on], labels[fit_on], factor)
        probs[score_on] = scaled_probabilities(logits[:, score_on], t, factor)
        temps.append(t)
    return probs, temps


def main() -> None:
    p = parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="LABEL=CHECKPOINT (a checkpoint.pt or its folder)")
    p.add_argument("--data", default=str(SHARED_FER))
    args = p.parse_args()
    faces = load_data(args.data).select("PublicTest")
    labels = faces.labels
    header(f"Calibration on PublicTest ({len(faces)} images, temperature cross-fitted on halves)")
    print("| model | accuracy | ECE, T=1 | NLL, T=1 | T fitted (halves) | ECE, fitted | NLL, fitted | "
          "T saved |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for spec in args.runs:
        label, _, path = spec.rpartition("=")
        ckpt = Checkpoint.load(path)
        prep = ckpt.prep
        logits = view_logits(ckpt.classifier(), faces.images, precision=ckpt.precision)
        factor = prior_correction(prep) if prep.logit_adjust else None
        raw = scaled_probabilities(logits, 1.0, factor)
        fitted, temps = cross_fitted(logits, labels, factor)
        print(f"| {label or path} | {(raw.argmax(1) == labels).mean():.4f} | "
              f"{expected_calibration_error(labels, raw):.4f} | {nll(labels, raw):.4f} | "
              f"{temps[0]:.3f}, {temps[1]:.3f} | {expected_calibration_error(labels, fitted):.4f} | "
              f"{nll(labels, fitted):.4f} | {prep.temperature:.3f} |", flush=True)


if __name__ == "__main__":
    cli(main)
