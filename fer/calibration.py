"""Post-hoc probabilities: how a model's view logits become the probabilities fer outputs.

Temperature, the average of the test-time views and the prior correction, computed once
(`combine_views`) for every caller: fer.classifier runs it inside the model's graph, and the
numpy entry points below (fitting, scoring, the report) convert to it.

Whether a predicted 0.9 is right 90% of the time, and temperature scaling to make it so.

Expected calibration error (Guo et al., 2017): the faces are put in N_BINS equal-width bins
by the confidence of their top class; ECE is the face-weighted mean, over bins, of
|accuracy - mean confidence|. A reliability diagram draws the same bins (`reliability`).

Temperature scaling divides every logit by one scalar T > 0 before the softmax, fitted by
negative log-likelihood on the split a checkpoint was selected on. Where it sits in fer's
pipeline (`combine_views`): logits / T -> softmax of each test-time view -> mean
over the views -> prior correction. T is fitted with the views and the prior correction in
place, so it calibrates the probabilities fer outputs. It leaves each view's ranking of the
classes alone; with several test-time views or a prior correction it can move a near tie.

The prior correction is post-hoc logit adjustment (Menon et al., 2021): each class's
probability is multiplied by `prior_factor` and renormalised, so rare classes (disgust is 1.5%
of FER2013) win near ties. tau 0 is no correction.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from fer.data.dataset import CLASSES

if TYPE_CHECKING:  # (fer.checkpoint imports this module)
    from fer.checkpoint import Checkpoint, Preprocessing

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


def combine_views(view_logits: torch.Tensor, temperature: float, factor: torch.Tensor | None = None) -> torch.Tensor:
    """(V, N, 7) logits of V test-time views -> (N, 7) probabilities: softmax(logits / T) averaged
    over the views, then reweighted by the prior correction `factor` (7,) and renormalised."""
    p = torch.softmax(view_logits / temperature, -1).mean(0)
    return p if factor is None else reweight(p, factor)


def reweight(probs: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    scaled = probs * factor.to(probs.dtype)
    return scaled / scaled.sum(-1, keepdim=True)


def scaled_probabilities(view_logits: np.ndarray, temperature: float, factor: np.ndarray | None = None) -> np.ndarray:
    """combine_views on numpy (float64): what fitting and scoring use."""
    z = torch.from_numpy(np.asarray(view_logits, dtype=np.float64))
    f = None if factor is None else torch.as_tensor(np.asarray(factor, dtype=np.float64))
    return combine_views(z, temperature, f).numpy()


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


def prior_factor(prior, tau: float) -> np.ndarray:
    """Per-class multipliers (7,) for post-hoc logit adjustment, clipped so only classes rarer
    than uniform are boosted: 1 / min(1, K * prior)^tau. Frequent classes keep their scores,
    so accuracy is spent only on the rare ones."""
    prior = np.asarray(prior, dtype=np.float64)
    return np.minimum(1.0, len(prior) * prior) ** -tau


def prior_correction(prep: Preprocessing) -> np.ndarray:
    """The (7,) multipliers a checkpoint's preprocessing applies to its probabilities (ones without
    a prior correction)."""
    tau = prep.logit_adjust
    return prior_factor(prep.class_prior, tau) if tau else np.ones(len(CLASSES))


def adjust_for_prior(probs: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Probabilities (N, 7) reweighted by the preprocessing's prior correction, renormalised."""
    if not prep.logit_adjust:
        return probs
    return reweight(torch.from_numpy(probs), torch.from_numpy(prior_correction(prep))).numpy()


def balancing_tau(labels: np.ndarray, probs: np.ndarray, prior, within: float,
                  taus=np.linspace(0.0, 1.0, 21)) -> float:
    """The largest tau whose accuracy stays within `within` (0.01 = 1 point) of tau 0's:
    rare-class recall bought with a bounded share of accuracy."""
    base = (probs.argmax(1) == labels).mean()
    ok = [t for t in taus if ((probs * prior_factor(prior, t)).argmax(1) == labels).mean() >= base - within - 1e-12]
    return float(max(ok))


def recalibrate(ckpt: Checkpoint, data: str | None = None, split: str | None = None):
    """`fer calibrate`: the temperature fitted again on `split` of `data` (default: the checkpoint's
    own validation rows), its views and prior correction in place. (the checkpoint with it, the
    faces, where they came from in words, metrics before, metrics after); nothing is saved here."""
    from fer.data import load_data, split_for_training
    from fer.errors import FerError
    from fer.evaluate import classification_metrics, probabilities, view_logits

    if ckpt.trained_on:
        raise FerError(f"{ckpt.path}: a refit, trained on every split but PrivateTest: no split is left to fit "
                       "its temperature on (it keeps the one of the run it refits)")
    faces = load_data(data or ckpt.source)
    if split:
        faces, where = faces.select(split), split
    else:
        _, faces, entry = split_for_training(faces, ckpt.train_config)
        where = f"validation: {entry['val_split']}"
    labels = faces.require_labels()
    logits = view_logits(ckpt.classifier(), faces.images, precision=ckpt.precision)
    before = classification_metrics(labels, probabilities(logits, ckpt.prep))
    factor = prior_correction(ckpt.prep) if ckpt.logit_adjust else None
    fitted = ckpt.with_prep(temperature=fit_temperature(logits, labels, factor))
    return fitted, faces, where, before, classification_metrics(labels, probabilities(logits, fitted.prep))
