"""Ensembles: greedy selection with replacement on known probabilities, and an ensemble
checkpoint that fer evaluate, predict and export read like any other."""
import json

import numpy as np
import pytest
from PIL import Image

from fer.checkpoint import Checkpoint
from fer.cli import main
from fer.evaluate import predict_checkpoint, prediction_metrics
from fer.ship.ensemble import ensemble_checkpoint, greedy_selection, score
from fer.ship.export import export, load_exported, parity


def _two_class(p_class0: list[float]) -> np.ndarray:
    p = np.zeros((len(p_class0), 7))
    p[:, 0], p[:, 1] = p_class0, 1 - np.asarray(p_class0)
    return p


def test_greedy_selection_picks_a_member_twice_when_that_scores_best():
    labels = np.array([0, 1, 0, 1])
    a = _two_class([0.9, 0.15, 0.45, 0.9])  # right on faces 0, 1: accuracy 0.5
    b = _two_class([0.9, 0.6, 0.9, 0.15])  # right on 0, 2, 3: 0.75, the best alone
    c = _two_class([0.45, 0.6, 0.45, 0.75])  # right on none
    # step 1: b. Step 2: b+a, b+b and b+c all score 0.75; the tie goes to the earlier member, a.
    # Step 3: (2b + a) / 3 = [0.9, 0.45, 0.75, 0.4] for class 0 is right on all four faces.
    assert greedy_selection([a, b, c], labels, size=3) == [1, 0, 1]
    assert greedy_selection([a, b, c], labels, size=1) == [1]
    assert greedy_selection([a, b, c], labels, size=6)[:3] == [1, 0, 1]  # later steps cannot beat 1.0


@pytest.mark.parametrize("seed", range(5))
def test_the_selections_score_is_the_evaluations(seed):
    """score() computes accuracy and macro-F1 in numpy; they must be prediction_metrics' (scikit-learn),
    classes absent from the labels or never predicted included."""
    rng = np.random.default_rng(seed)
    labels = rng.choice([0, 2, 3, 3, 4, 6], size=200)  # 1 and 5 absent
    probs = rng.dirichlet(np.ones(7), size=200)
    probs[:, 1] = 0  # 1 never predicted
    expected = prediction_metrics(labels, probs.argmax(1))
    assert score(labels, probs) == expected["accuracy"]
    assert score(labels, probs, "macro_f1") == pytest.approx(expected["macro_f1"], abs=1e-12)


RUNS = {"cnn": ["model.name=cnn", "model.channels=[4,8]", "model.kernel_sizes=[3,3]", "model.head=gap",
                "model.head_hidden=[]", "train.crop_size=44", "train.tta=tencrop"],
        "dnn": ["model.name=seed_dnn", "train.tta=flip", "train.logit_adjust=0.5"]}


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    members = []
    for family, overrides in RUNS.items():
        # fp32 whatever this machine measures: mixed-precision members would make the ensemble run fp32
        # while a bf16 member alone does not, which is not what this test is about
        assert main(["train", "--epochs", "1", "--out", str(root / family), "train.batch_size=64",
                     "train.precision=fp32", *overrides]) == 0
        members.append((Checkpoint.load(root / family), family))
    made = ensemble_checkpoint(members, [0, 1, 0], {"source": "synthetic", "val_split": "PublicTest"},
                               {"val_acc": 0.0, "val_macro_f1": 0.0})
    made.save(root / "ens" / "checkpoint.pt")
    return root


def test_the_ensemble_is_its_members_weighted(ensemble, synthetic):
    faces = synthetic.images[:32]
    cnn, dnn = (Checkpoint.load(ensemble / f) for f in ("cnn", "dnn"))
    ens = Checkpoint.load(ensemble / "ens")
    assert [m["weight"] for m in ens.payload["model"]["members"]] == pytest.approx([2 / 3, 1 / 3])
    expected = 2 / 3 * predict_checkpoint(cnn, faces) + 1 / 3 * predict_checkpoint(dnn, faces)
    assert np.abs(predict_checkpoint(ens, faces) - expected).max() < 1e-5


def test_evaluate_predict_and_export_read_an_ensemble(ensemble, tmp_path, capsys, synthetic):
    assert main(["evaluate", str(ensemble / "ens"), "--split", "PrivateTest", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] > 0
    face = tmp_path / "face.png"
    Image.fromarray(synthetic.images[0]).save(face)
    assert main(["predict", str(ensemble / "ens"), str(face)]) == 0
    assert capsys.readouterr().out.startswith(f"{face}\t")
    ens = Checkpoint.load(ensemble / "ens")
    assert ens.views == "tencrop+flip" and Checkpoint.load(ensemble / "dnn").views == "flip"  # cost's column
    path = export(ens, "torchscript", tmp_path / "ens.torchscript.pt")
    faces = synthetic.images[:16]
    from_file = load_exported(path, trust_torchscript=True)(faces)
    assert parity(predict_checkpoint(ens, faces, precision="fp32"), from_file) < 1e-5


def _at(ckpt: Checkpoint, precision: str) -> Checkpoint:
    return Checkpoint({**ckpt.payload, "train_config": {**ckpt.train_config, "precision": precision}})


def test_members_that_score_in_bf16_make_an_ensemble_that_does(ensemble, synthetic):
    """The ensemble is chosen on its members' scores at their runs' precision, so `fer evaluate`
    of the ensemble must score them the same way; members of mixed precision run fp32."""
    cnn, dnn = (Checkpoint.load(ensemble / f) for f in ("cnn", "dnn"))
    bf16 = ensemble_checkpoint([(_at(cnn, "bf16"), "cnn"), (_at(dnn, "bf16"), "dnn")], [0, 1], {}, {})
    assert bf16.payload["train_config"]["precision"] == "bf16"
    mixed = ensemble_checkpoint([(_at(cnn, "bf16"), "cnn"), (dnn, "dnn")], [0, 1], {}, {})
    assert mixed.payload["train_config"]["precision"] == "fp32"
    faces = synthetic.images[:32]
    expected = (predict_checkpoint(_at(cnn, "bf16"), faces) + predict_checkpoint(_at(dnn, "bf16"), faces)) / 2
    rebuilt = Checkpoint(bf16.payload)  # the model rebuilt from the stored members and weights
    assert np.abs(predict_checkpoint(rebuilt, faces) - expected).max() < 1e-5


def test_fer_ensemble_averages_runs_and_scores_what_it_wrote(ensemble, tmp_path, capsys, monkeypatch):
    out = tmp_path / "avg"
    runs = [str(ensemble / "cnn"), str(ensemble / "dnn" / "checkpoint.pt")]  # a run folder or its checkpoint
    held = {f: sorted(p.name for p in (ensemble / f).iterdir()) for f in ("cnn", "dnn")}
    real, loads = Checkpoint.load.__func__, []
    counted = classmethod(lambda cls, p, *a, **k: loads.append(p) or real(cls, p, *a, **k))
    monkeypatch.setattr(Checkpoint, "load", counted)
    assert main(["ensemble", *runs, "--out", str(out), "--json"]) == 0
    monkeypatch.undo()
    assert sorted(str(p) for p in loads) == sorted(runs)  # each member loaded once
    assert {f: sorted(p.name for p in (ensemble / f).iterdir()) for f in held} == held  # the runs as they were
    done = json.loads(capsys.readouterr().out)
    ens = Checkpoint.load(out)
    assert [m["weight"] for m in ens.payload["model"]["members"]] == [0.5, 0.5]
    assert [m["member"] for m in done["members"]] == [str(ensemble / "cnn" / "checkpoint.pt"), runs[1]]
    assert main(["evaluate", str(out), "--split", "PublicTest", "--json"]) == 0  # the split it reports on
    evaluated = json.loads(capsys.readouterr().out)
    assert done["split"] == "PublicTest"
    assert evaluated["accuracy"] == pytest.approx(done["ensemble"]["accuracy"], abs=1e-9)
    # a second ensemble into the same folder is refused, then replaced under --overwrite
    assert main(["ensemble", *runs, "--out", str(out)]) == 2
    assert "holds a checkpoint" in capsys.readouterr().err
    assert main(["ensemble", *runs, "--out", str(out), "--overwrite"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "equal-weight ensemble of 2 runs, scored on PublicTest:" and "ensemble" in printed[3]


@pytest.mark.parametrize("runs, says", [
    (["cnn"], "at least two runs"),
    (["cnn", "ens"], "an ensemble already"),
    (["cnn", "nowhere"], "nowhere"),
    (["cnn", "trial"], "trial: a folder without checkpoint.pt (it holds: checkpoint_000003/)"),
    (["cnn", "other"], "trained on other.csv"),
])
def test_fer_ensemble_refuses_what_it_cannot_average(ensemble, tmp_path, capsys, runs, says):
    dnn = Checkpoint.load(ensemble / "dnn")
    Checkpoint({**dnn.payload, "data": {**dnn.data, "source": "other.csv"}}).save(tmp_path / "other" / "checkpoint.pt")
    (tmp_path / "trial" / "checkpoint_000003").mkdir(parents=True)  # a sweep's trial: its epochs hold checkpoints
    folders = {r: tmp_path / r if r in ("other", "trial") else ensemble / r for r in runs}
    assert main(["ensemble", *(str(folders[r]) for r in runs), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "checkpoint.pt").exists()
