"""Ensembles from trained checkpoints: greedy forward selection with replacement on validation
probabilities (Caruana et al., 2004), and an ensemble checkpoint in fer's own format, so that
`fer evaluate`, `predict` and `export` and the analysis report read it like any other.

Selection adds, at each step, the member whose addition scores best on the validation split
(a member may be added again: that raises its weight), and keeps the best-scoring prefix of
the `size` steps. Its score on that split is therefore optimistic, like any selected model's.
"""
from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from fer.calibration import prior_correction
from fer.checkpoint import Checkpoint, preprocessing
from fer.config import TrainConfig
from fer.data import CLASSES
from fer.models import model_from_spec
from fer.models.ensemble import Member


def score(labels: np.ndarray, probs: np.ndarray, metric: str = "accuracy") -> float:
    """Accuracy or macro-F1 (over all 7 classes, 0 for a class neither present nor predicted, as
    fer.evaluate.prediction_metrics): computed here in numpy, since the greedy selection and its
    held-out check call this thousands of times."""
    pred = probs.argmax(1)
    if metric != "macro_f1":
        return float((pred == labels).mean())
    k = len(CLASSES)
    hits = np.bincount(labels[pred == labels], minlength=k)
    both = np.bincount(labels, minlength=k) + np.bincount(pred, minlength=k)  # 2TP + FP + FN per class
    return float(np.where(both > 0, 2 * hits / np.maximum(both, 1), 0.0).mean())


def greedy_selection(probs: list[np.ndarray], labels: np.ndarray, size: int,
                     metric: str = "accuracy") -> list[int]:
    """Indices into `probs` (each (N, 7)), with repeats: the best-scoring prefix of `size`
    greedy steps; ties go to the earlier member."""
    chosen, total = [], np.zeros_like(probs[0], dtype=np.float64)
    best, best_prefix = -np.inf, []
    for _ in range(size):
        scores = [score(labels, (total + p) / (len(chosen) + 1), metric) for p in probs]
        pick = int(np.argmax(scores))
        chosen.append(pick)
        total += probs[pick]
        if scores[pick] > best:
            best, best_prefix = scores[pick], list(chosen)
    return best_prefix


def member_entry(ckpt: Checkpoint, weight: float, trial: str) -> dict:
    """What an ensemble keeps of a member checkpoint (its weights go into the state dict)."""
    prep = ckpt.prep
    return Member(dict(ckpt.spec), prep.mean, prep.std, prep.crop_size, ckpt.tta,
                  tuple(float(f) for f in prior_correction(prep)), ckpt.temperature, float(weight), trial).as_dict()


def ensemble_checkpoint(members, picks: list[int], data: dict, metrics: dict, temperature: float = 1.0) -> Checkpoint:
    """An ensemble checkpoint of the picked members, each weighted by how often it was picked.
    `members[i]` is (Checkpoint, trial name) for every i in picks: a list, or a dict of the picked.
    Each member keeps its own temperature; `temperature` is the ensemble's, over the log of the
    members' weighted average (fitted on the validation split it was selected on)."""
    counts = Counter(picks)
    chosen = sorted(counts)
    entries = [member_entry(members[i][0], counts[i] / len(picks), members[i][1]) for i in chosen]
    spec = {"name": "ensemble", "members": entries}
    model = model_from_spec(spec)
    for member, i in zip(model.members, chosen):
        member.model.load_state_dict(members[i][0].state_dict)
    precisions = {members[i][0].precision for i in chosen}
    # members scored (and were selected) at their runs' precision; mixed ones run fp32 together
    precision = precisions.pop() if len(precisions) == 1 else "fp32"
    # identity (members standardise, crop and correct for the prior themselves)
    prep = preprocessing(0.0, 1 / 255, 48, members[chosen[0]][0].prep.class_prior, temperature=temperature)
    train = dataclasses.asdict(TrainConfig(tta="none", precision=precision))
    return Checkpoint.build(spec, model.state_dict(), prep, train, metrics=metrics, data=data)
