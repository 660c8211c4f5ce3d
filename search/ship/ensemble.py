"""`search ensemble`: every trial's best checkpoint, scored on the validation split it was
selected on with its own TTA, combined by fer.ship.ensemble's greedy selection into one ensemble
checkpoint. Validation probabilities are cached in the cache folder (fer.ship.probs), so a
second ensemble of the same sweep costs seconds.

A score on the split the members were chosen on is optimistic, the more so the more candidates:
`held_out` also chooses on one random half of that split and scores on the other, so a user sees
whether the ensemble beats the best single checkpoint where neither was chosen.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from fer.checkpoint import Checkpoint
from fer.data import load_data
from fer.remote import location
from fer.ship.ensemble import ensemble_checkpoint, ensemble_temperature, greedy_selection, score
from fer.ship.probs import validation_probs
from search.results import ResultsError, trials_table


def candidates(root: str | Path, family: str, snapshots: bool = False) -> tuple[list[tuple[str, str]], str]:
    """([("family/trial_id", checkpoint path)] of every trial with a checkpoint, the metric the
    sweeps selected by). Checkpoints are read one at a time later: a sweep's may not fit in memory.
    With `snapshots`, every other checkpoint each trial kept follows its best one, named
    "family/trial_id/checkpoint_NNNNNN" (snapshot ensembles: Huang et al., 2017)."""
    table = trials_table(root)
    table = table[table["checkpoint"].notna() & ((table["family"] == family) | (family == "all"))]
    if table.empty:
        raise ResultsError(f"{root}: no {'' if family == 'all' else family + ' '}trial has a checkpoint yet")
    metric = "macro_f1" if set(table["metric"]) == {"val_macro_f1"} else "accuracy"
    members = []
    for _, t in table.iterrows():
        name = f"{t['family']}/{t['trial_id']}"
        members.append((name, t["checkpoint"]))
        if snapshots:
            members += [(f"{name}/{p.parent.name}", str(p)) for p in other_checkpoints(t["checkpoint"])]
    return members, metric


def other_checkpoints(best: str) -> list:
    """The trial's kept checkpoint files but `best` (Tune keeps the space's keep_checkpoints best
    epochs and the latest one), in epoch order."""
    folder = location(best).parent
    kept = sorted(d / "checkpoint.pt" for d in folder.parent.glob("checkpoint_*") if d.name != folder.name)
    return [p for p in kept if p.is_file()]


class HeldOut(NamedTuple):
    """The greedy ensemble and the best single candidate, each chosen on one half of the
    validation split and scored on the other (both ways, `halves` in all): means, and on how
    many halves the ensemble was ahead."""

    ensemble: float
    best_single: float
    ahead: int
    halves: int


def unseen_half_scores(labels: np.ndarray, probs: list[np.ndarray], pool: list[int], size: int,
                       metric: str = "accuracy", halvings: int = 10) -> np.ndarray:
    """(2 x halvings, 2): on each half, [the best single of `pool`, the greedy ensemble of `pool`],
    both chosen on the other half. The halvings are seeded: the same candidates give the same rows."""
    rows = []
    for seed in range(halvings):
        order = np.random.default_rng(seed).permutation(len(labels))
        for a, b in ((order[::2], order[1::2]), (order[1::2], order[::2])):
            top = pool[int(np.argmax([score(labels[a], probs[i][a], metric) for i in pool]))]
            picks = greedy_selection([probs[i][a] for i in pool], labels[a], size, metric)
            combined = sum(probs[pool[i]][b] for i in picks) / len(picks)
            rows.append([score(labels[b], probs[top][b], metric), score(labels[b], combined, metric)])
    return np.array(rows)


def held_out(labels: np.ndarray, probs: list[np.ndarray], size: int, metric: str = "accuracy") -> HeldOut:
    m = unseen_half_scores(labels, probs, list(range(len(probs))), size, metric)
    return HeldOut(float(m[:, 1].mean()), float(m[:, 0].mean()), int((m[:, 1] > m[:, 0]).sum()), len(m))


def build_ensemble(root: str | Path, family: str, size: int, out: str | Path, snapshots: bool = False) -> dict:
    """Select, write out/checkpoint.pt, and return what to print: members with their weights and
    validation scores, and the ensemble's scores against its best member's."""
    members, metric = candidates(root, family, snapshots)
    data = Checkpoint.load(members[0][1]).data
    faces = load_data(data.get("source"))
    labels, probs = validation_probs(members, faces)
    picks = greedy_selection(probs, labels, size, metric)
    weights = np.bincount(picks, minlength=len(members)) / len(picks)
    combined = sum(w * p for w, p in zip(weights, probs))
    single = [score(labels, p, metric) for p in probs]
    best = int(np.argmax(single))
    scores = {m: {"ensemble": score(labels, combined, m), "best_member": score(labels, probs[best], m)}
              for m in ("accuracy", "macro_f1")}
    held = held_out(labels, probs, size, metric)  # before anything is written: Ctrl-C here leaves nothing
    picked = {i: (Checkpoint.load(members[i][1]), members[i][0]) for i in set(picks)}  # only these are kept
    temperature = ensemble_temperature(combined, labels)
    ensemble = ensemble_checkpoint(picked, picks, data,
                                   {"val_acc": scores["accuracy"]["ensemble"],
                                    "val_macro_f1": scores["macro_f1"]["ensemble"]}, temperature)
    ensemble.save(Path(out) / "checkpoint.pt")
    chosen = [{"member": members[i][0], "weight": float(weights[i]), metric: single[i]}
              for i in np.flatnonzero(weights)]
    return {"out": str(Path(out) / "checkpoint.pt"), "metric": metric, "candidates": len(members),
            "members": chosen, "scores": scores, "best_member": members[best][0],
            "split": data.get("val_split") or "validation",
            "held_out": held._asdict()}
