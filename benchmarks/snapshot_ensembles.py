"""Snapshot ensembles against a sweep's best checkpoint, scored where they were not selected.

`search ensemble` selects and scores on the same validation split, so its printed gain is
optimistic, and more so the more candidates it has (`--snapshots` offers every kept epoch).
This halves that split at random, selects on one half (the best single checkpoint, the greedy
ensemble of the trials' best, the greedy ensemble of every kept checkpoint) and scores on the
other, both ways, over 10 halvings. It reads the validation probabilities that
`search ensemble --snapshots` cached (run it first, or this computes them).

    python -m search ensemble RESULTS/NAME --family cnn --snapshots --out ens
    python -m benchmarks.snapshot_ensembles RESULTS/NAME --size 10
"""
from __future__ import annotations

import numpy as np

from benchmarks.common import cli, parser
from fer.checkpoint import Checkpoint
from fer.data import load_data
from fer.ship.probs import validation_probs
from search.ship.ensemble import candidates, unseen_half_scores

ARMS = ("best single", "ensemble of the trials' best", "best single of every checkpoint", "snapshot ensemble")


def halves_scores(labels: np.ndarray, probs: list[np.ndarray], best_only: list[int], size: int,
                  halvings: int = 10) -> np.ndarray:
    """(2 x halvings, 4): each arm's accuracy on the half it was not selected on."""
    return np.hstack([unseen_half_scores(labels, probs, pool, size, halvings=halvings)
                      for pool in (best_only, list(range(len(probs))))])


def main(argv=None) -> None:
    p = parser(description=__doc__.splitlines()[0])
    p.add_argument("dir", help="an experiment folder (RESULTS/NAME)")
    p.add_argument("--family", default="cnn")
    p.add_argument("--size", type=int, default=10, help="greedy steps, as search ensemble's --size")
    args = p.parse_args(argv)
    members, _ = candidates(args.dir, args.family, snapshots=True)
    faces = load_data(Checkpoint.load(members[0][1]).data.get("source"))
    labels, probs = validation_probs(members, faces)
    best = {name for name, _ in candidates(args.dir, args.family)[0]}  # each trial's best checkpoint
    best_only = [i for i, (name, _) in enumerate(members) if name in best]
    print(f"{len(members)} checkpoints, {len(best_only)} trials; {len(labels)} validation faces, halved 10 times")
    m = halves_scores(labels, probs, best_only, args.size)
    for arm, mean, sd in zip(ARMS, m.mean(0), m.std(0)):
        print(f"{arm:<32} {mean:.4f} (sd {sd:.4f}) on the unseen half")
    d = m[:, 3] - m[:, 0]
    print(f"snapshot ensemble minus best single, paired: {d.mean():+.4f} (sd {d.std():.4f}), ahead on "
          f"{int((d > 0).sum())} of {len(d)} halves")


if __name__ == "__main__":
    cli(main)
