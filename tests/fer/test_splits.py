"""fer.data.splits: the split `fer evaluate` scores, the caveat on a score that is optimistic,
and a refit refused on the splits it trained on."""
import numpy as np
import pytest

from fer.data import FaceSet
from fer.data.splits import evaluation_split, refuse_seen_split, selection_caveat
from fer.errors import CheckpointError


def _faces(split):
    n = len(split)
    return FaceSet(images=np.zeros((n, 48, 48), np.uint8), labels=np.arange(n) % 7, split=np.asarray(split),
                   source="/data/x.csv")


def test_evaluate_scores_private_test_else_public_test_else_everything():
    assert evaluation_split(_faces([0, 1, 2]), None) == "PrivateTest"
    assert evaluation_split(_faces([0, 1]), None) == "PublicTest"
    assert evaluation_split(_faces([0, 1, 2]), "val") == "PublicTest"
    no_splits = FaceSet(images=np.zeros((2, 48, 48), np.uint8), labels=None, split=None, source="x")
    assert evaluation_split(no_splits, None) is None


def test_a_score_on_the_selection_split_carries_a_caveat():
    data = {"source": "/data/x.csv", "val_split": "PublicTest"}
    assert "selected on" in selection_caveat(data, "/data/x.csv", "PublicTest")
    assert selection_caveat(data, "/data/x.csv", "PrivateTest") is None
    assert selection_caveat(data, "/data/other.csv", "PublicTest") is None
    assert "trained and selected on" in selection_caveat({**data, "val_split": "holdout"}, "/data/x.csv", "Training")


def test_a_refit_is_scored_on_private_test_only():
    data = {"trained_on": ["Training", "PublicTest"]}
    refuse_seen_split(data, "PrivateTest", "ckpt")
    refuse_seen_split({"val_split": "PublicTest"}, "PublicTest", "ckpt")  # not a refit
    with pytest.raises(CheckpointError, match="ckpt: a refit, trained on Training and PublicTest"):
        refuse_seen_split(data, "PublicTest", "ckpt")
