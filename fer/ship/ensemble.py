"""Ensembles from trained checkpoints: greedy forward selection with replacement on validation
probabilities (Caruana et al., 2004), and an ensemble checkpoint in fer's own format, so that
`fer evaluate`, `predict` and `export` and the analysis report read it like any other.

`average_runs` is the other way to build one: runs of one recipe trained apart (other seeds), their
probabilities averaged with equal weights, nothing chosen on the validation split, so its score there
is as optimistic as its members' own best epochs and no more.

Selection adds, at each step, the member whose addition scores best on the validation split
(a member may be added again: that raises its weight), and keeps the best-scoring prefix of
the `size` steps. Its score on that split is therefore optimistic, like any selected model's.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np

from fer.calibration import fit_temperature, prior_correction
from fer.checkpoint import Checkpoint, preprocessing
from fer.config import TrainConfig
from fer.data import CLASSES, load_data
from fer.errors import FerError
from fer.models import model_from_spec
from fer.models.ensemble import Member
from fer.remote import is_local
from fer.ship.probs import validation_probs


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


def ensemble_temperature(combined: np.ndarray, labels: np.ndarray) -> float:
    """The temperature of an ensemble's averaged probabilities (N, 7), fitted on `labels`: over their
    log, as one view."""
    return fit_temperature(np.log(np.clip(combined, 1e-12, None))[None], labels)  # (1, N, 7)


def average_runs(paths: list[str], out: str | Path) -> dict:
    """Write out/checkpoint.pt, the equal-weight ensemble of the checkpoints at `paths` (each a run
    folder or its checkpoint.pt, local or at a storage URI), all validated on the same rows; return
    each member's validation scores and the ensemble's. Nothing is written before every member has
    been scored."""
    files, loaded = _runs(paths)
    members = list(zip(files, loaded))  # loaded once, to check and to score
    data = loaded[0].data
    labels, probs = validation_probs(members, load_data(data.get("source")))
    combined = np.mean(probs, axis=0)
    scores = {m: score(labels, combined, m) for m in ("accuracy", "macro_f1")}
    ensemble = ensemble_checkpoint(dict(enumerate(zip(loaded, files))), list(range(len(files))), data,
                                   {"val_acc": scores["accuracy"], "val_macro_f1": scores["macro_f1"]},
                                   ensemble_temperature(combined, labels))
    ensemble.save(Path(out) / "checkpoint.pt")
    return {"out": str(Path(out) / "checkpoint.pt"), "split": data.get("val_split") or "validation",
            "members": [{"member": f, "accuracy": score(labels, p), "macro_f1": score(labels, p, "macro_f1")}
                        for f, p in zip(files, probs)],
            "ensemble": scores}


def _runs(paths: list[str]) -> tuple[list[str], list[Checkpoint]]:
    """The checkpoints at `paths` (a run folder stands for its checkpoint.pt, a storage URI is
    fetched), named as the user gave them, and loaded; refused in one line, before any scoring,
    where an average would mislead: an ensemble as a member, a refit (its validation rows were
    training rows), a run trained on other data than the first."""
    if len(paths) < 2:
        raise FerError("an ensemble needs at least two runs")
    loaded = [Checkpoint.load(p) for p in paths]
    files = [str(ckpt.path) if is_local(p) else str(p) for p, ckpt in zip(paths, loaded)]
    for f, ckpt in zip(files, loaded):
        if ckpt.spec.get("name") == "ensemble":
            raise FerError(f"{f}: an ensemble already; name the runs it was made of")
        if ckpt.trained_on:
            raise FerError(f"{f}: a refit, trained on {' and '.join(ckpt.trained_on)}: its validation rows were "
                           "training rows")
        if ckpt.source != loaded[0].source:
            raise FerError(f"{f}: trained on {ckpt.source}, {files[0]} on {loaded[0].source}: runs of one "
                           "recipe on the same data are averaged")
    return files, loaded
