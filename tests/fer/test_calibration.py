"""fer.calibration: ECE and NLL with known answers, a temperature fitted where the best one is
known, and a fitted temperature that every reader of a checkpoint applies."""
import math

import numpy as np
import pytest

from fer.calibration import expected_calibration_error, fit_temperature, nll, reliability, scaled_probabilities
from fer.checkpoint import Checkpoint
from fer.cli import main
from fer.evaluate import predict_checkpoint


def _confident(p_top: float, n: int, right: int) -> tuple[np.ndarray, np.ndarray]:
    """n faces whose top class (0) has probability p_top, `right` of them labelled 0."""
    probs = np.full((n, 7), (1 - p_top) / 6)
    probs[:, 0] = p_top
    return np.array([0] * right + [1] * (n - right)), probs


def test_ece_and_nll_of_hand_made_probabilities():
    labels, probs = _confident(0.8, 10, 8)  # 80% sure, 80% right: calibrated
    assert expected_calibration_error(labels, probs) == pytest.approx(0.0)
    labels, probs = _confident(0.9, 10, 5)  # 90% sure, 50% right
    assert expected_calibration_error(labels, probs) == pytest.approx(0.4)
    a, pa = _confident(0.9, 10, 5)
    b, pb = _confident(0.35, 30, 30)  # another bin: 35% sure, always right, three times the faces
    r = reliability(np.concatenate([a, b]), np.concatenate([pa, pb]))
    assert r.ece == pytest.approx((10 * 0.4 + 30 * 0.65) / 40)
    assert r.counts.sum() == 40 and (r.counts > 0).sum() == 2 and len(r.edges) == 16
    assert nll(np.array([0, 0]), np.array([[0.5] + [0.5 / 6] * 6, [0.25] + [0.75 / 6] * 6])) == \
        pytest.approx((math.log(2) + math.log(4)) / 2)


@pytest.mark.parametrize("true_t", [0.5, 3.0])
def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_at(true_t):
    rng = np.random.default_rng(0)
    base = rng.normal(0, 2, (20000, 7))
    p = np.exp(base) / np.exp(base).sum(1, keepdims=True)
    labels = (p.cumsum(1) > rng.random((20000, 1))).argmax(1)  # drawn from softmax(base)
    logits = base * true_t  # a network over- (3) or under-confident (0.5) by true_t
    assert fit_temperature(logits[None], labels) == pytest.approx(true_t, rel=0.05)
    calibrated = scaled_probabilities(logits[None], fit_temperature(logits[None], labels))
    assert expected_calibration_error(labels, calibrated) < 0.02


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = {}
    for name, extra in {"fitted": [], "raw": ["train.calibrate=false"]}.items():
        out[name] = tmp_path_factory.mktemp(name)
        assert main(["train", "--epochs", "2", "--out", str(out[name]), "model.name=seed_dnn", "train.tta=flip",
                     "train.logit_adjust=0.5", *extra]) == 0
    return out


def test_training_fits_a_temperature_that_load_export_and_ensembles_apply(trained, synthetic, tmp_path):
    from fer.ship.ensemble import ensemble_checkpoint
    from fer.ship.export import export, load_exported, parity

    ckpt = Checkpoint.load(trained["fitted"])
    payload = ckpt.payload
    t = payload["preprocessing"]["temperature"]
    assert t != 1.0 and payload["history"][-1]["temperature"] > 0 and "val_ece" in payload["history"][-1]
    faces = synthetic.images[:32]
    probs = predict_checkpoint(ckpt, faces)
    untempered = predict_checkpoint(ckpt.with_prep(temperature=1.0), faces)
    assert parity(probs, untempered) > 1e-3  # the temperature is applied
    path = export(ckpt, "torchscript", tmp_path / "m.torchscript.pt")
    assert parity(predict_checkpoint(ckpt, faces, precision="fp32"),
                  load_exported(path, trust_torchscript=True)(faces)) < 1e-5
    ens = ensemble_checkpoint({0: (ckpt, "a")}, [0], {}, {}, temperature=1.0)
    assert ens.payload["model"]["members"][0]["temperature"] == t
    member = Checkpoint(ens.payload)  # rebuilt from the stored dict
    assert parity(predict_checkpoint(member, faces, precision="fp32"),
                  predict_checkpoint(ckpt, faces, precision="fp32")) < 1e-5


def test_fer_calibrate_fits_an_older_checkpoint_and_evaluate_reports_it(trained, capsys):
    assert Checkpoint.load(trained["raw"]).payload["preprocessing"]["temperature"] == 1.0
    assert main(["calibrate", str(trained["raw"])]) == 0
    said = capsys.readouterr().out
    assert "[validation: PublicTest]" in said and "ECE" in said and "saved in" in said
    t = Checkpoint.load(trained["raw"]).payload["preprocessing"]["temperature"]
    assert t != 1.0
    assert main(["evaluate", str(trained["raw"]), "--split", "PublicTest", "--json"]) == 0
    import json

    m = json.loads(capsys.readouterr().out)
    assert 0 <= m["ece"] <= 1 and m["nll"] > 0
