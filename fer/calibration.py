"""Whether a predicted 0.9 is right 90% of the time, and temperature scaling to make it so.

Expected calibration error (Guo et al., 2017): the faces are put in N_BINS equal-width bins
by the confidence of their top class; ECE is the face-weighted mean, over bins, of
|accuracy - mean confidence|. A reliability diagram draws the same bins (`reliability`).

Temperature scaling divides every logit by one scalar T > 0 before the softmax, fitted by
negative log-likelihood on the split a checkpoint was selected on. Where it sits in fer's
pipeline (fer.evaluate.probabilities): logits / T -> softmax of each test-time view -> mean
over the views -> prior correction. T is fitted with the views and the prior correction in
place, so it calibrates the probabilities fer outputs. It leaves each view's ranking of the
classes alone; with several test-time views or a prior correction it can move a near tie.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

N_BINS = 15
T_RANGE = (0.05, 20.0)  # temperatures searched: far beyond what a trained network needs either way


class Reliability(NamedTuple):
    """Per-bin figures of a reliability diagram: equal-width confidence bins over [0, 1]."""

    edges: np.ndarray  # (n_bins + 1,)
    confidence: np.ndarray  # (n_bins,) mean top-class probability in each bin (NaN: empty bin)
    accuracy: np.ndarray  # (n_bins,) share of the bin's faces whose top class is right (NaN: empty)
    counts: np.ndarray  # (n_bins,) faces in each bin
    ece: float


def reliability(labels: np.ndarray, probs: np.ndarray, n_bins: int = N_BINS) -> Reliability:
    """The bins of `probs` (N, 7) against `labels` (N,), and their ECE."""
    confidence, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)  # bins (lo, hi]
    counts = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(which, weights=confidence, minlength=n_bins) / counts
        acc = np.bincount(which, weights=(pred == labels).astype(float), minlength=n_bins) / counts
    gaps = np.where(counts > 0, np.abs(acc - conf), 0.0)
    ece = float((gaps * counts).sum() / max(len(labels), 1))
    return Reliability(edges, conf, acc, counts, ece)


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int = N_BINS) -> float:
    return reliability(labels, probs, n_bins).ece


def nll(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    if not len(labels):
        return 0.0
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def scaled_probabilities(view_logits: np.ndarray, temperature: float, factor: np.ndarray | None = None) -> np.ndarray:
    """(V, N, 7) logits of V test-time views -> (N, 7) probabilities: softmax(logits / T) averaged
    over the views, then reweighted by the prior correction `factor` (7,) and renormalised."""
    z = view_logits.astype(np.float64) / temperature
    z -= z.max(-1, keepdims=True)
    p = np.exp(z)
    p = (p / p.sum(-1, keepdims=True)).mean(0)
    if factor is not None:
        p = p * factor
        p /= p.sum(-1, keepdims=True)
    return p


def fit_temperature(view_logits: np.ndarray, labels: np.ndarray, factor: np.ndarray | None = None) -> float:
    """The T in T_RANGE that minimises the NLL of scaled_probabilities on (view_logits, labels):
    a bounded 1-D search over log T, which the NLL is smooth and (for one view) convex in."""
    from scipy.optimize import minimize_scalar

    if not len(labels):
        return 1.0
    lo, hi = np.log(T_RANGE)
    found = minimize_scalar(lambda log_t: nll(labels, scaled_probabilities(view_logits, np.exp(log_t), factor)),
                            bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))
