"""analysis.sources: the images a report judges a model on come from fer.data.splits' rules."""
import pytest

from analysis.sources import resolve_source
from fer.checkpoint import Checkpoint, preprocessing
from fer.data import SyntheticSpec, make_synthetic
from fer.data.splits import data_entry
from fer.errors import CheckpointError
from fer.models import model_from_spec
from tests.factories import write_kaggle


def _refit(tmp_path, fractions):
    faces = make_synthetic(SyntheticSpec(n_per_class=20, seed=4, split_fractions=fractions))
    csv = write_kaggle(faces, tmp_path / "faces.csv")
    spec = {"name": "dnn", "widths": [8], "dropout": 0.0}
    data = data_entry(str(csv), 100, 0, None, trained_on=["Training", "PublicTest"])
    ckpt = Checkpoint.build(spec, model_from_spec(spec).state_dict(), preprocessing(0.5, 0.2, 48, [1 / 7] * 7),
                            {"batch_size": 8}, data=data)
    ckpt.save(tmp_path / "refit" / "checkpoint.pt")
    return faces, str(tmp_path / "refit")


def test_a_refit_is_judged_on_privatetest_only(tmp_path):
    faces, refit = _refit(tmp_path, (0.6, 0.2, 0.2))
    (model,) = resolve_source(refit, None, None).models
    assert model.split_name == "PrivateTest" and len(model.faces) == len(faces.select("PrivateTest"))
    with pytest.raises(CheckpointError, match="a refit, trained on Training and PublicTest: scoring it on "
                                              "PublicTest would score faces it trained on"):
        resolve_source(refit, None, "PublicTest")


def test_a_refit_of_data_without_privatetest_is_refused(tmp_path):
    _, refit = _refit(tmp_path, (0.7, 0.3, 0.0))
    with pytest.raises(CheckpointError, match="scoring it on all rows would score faces it trained on"):
        resolve_source(refit, None, None)
