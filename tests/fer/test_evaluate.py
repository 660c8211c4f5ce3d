from dataclasses import replace

import numpy as np
import pytest
import torch

from fer.calibration import adjust_for_prior, balancing_tau, prior_factor
from fer.checkpoint import preprocessing
from fer.evaluate import classification_metrics, predict_proba


class FixedLogits(torch.nn.Module):
    """Every image gets the same logits, whatever its pixels."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


PRIOR = np.array([0.14, 0.015, 0.14, 0.25, 0.17, 0.11, 0.175])  # FER2013's training shares, roughly


def test_prior_factor_boosts_only_classes_rarer_than_uniform():
    f = prior_factor(PRIOR, 1.0)
    assert f[1] == pytest.approx(1 / (7 * 0.015)) and f[5] == pytest.approx(1 / (7 * 0.11))
    assert np.all(f[[3, 4, 6]] == 1.0) and np.all(f >= 1.0)  # happy, sad, neutral are above 1/7
    assert np.all(prior_factor(PRIOR, 0.0) == 1.0)


def test_logit_adjustment_renormalises_and_lets_the_rare_class_win():
    probs = np.array([[0.30, 0.10, 0.10, 0.30, 0.10, 0.05, 0.05]])
    assert adjust_for_prior(probs, preprocessing(0.5, 0.25, 48, PRIOR)) is probs  # tau 0: untouched
    adjusted = adjust_for_prior(probs, preprocessing(0.5, 0.25, 48, PRIOR, logit_adjust=1.0))
    assert adjusted.sum() == pytest.approx(1.0) and adjusted.argmax() == 1  # 0.10 x 9.5 beats 0.30


def test_predictions_follow_the_checkpoints_adjustment():
    model = FixedLogits([2.0, 0.5, 0.0, 2.2, 0.0, 0.0, 0.0])
    images = np.zeros((5, 48, 48), np.uint8)
    prep = preprocessing(0.5, 0.25, 48, PRIOR)
    plain = predict_proba(model, images, prep)
    adjusted = predict_proba(model, images, replace(prep, logit_adjust=1.0))
    assert set(plain.argmax(1)) == {3} and set(adjusted.argmax(1)) == {1}
    assert np.allclose(adjusted.sum(1), 1.0, atol=1e-6)


def test_balancing_tau_spends_at_most_the_allowed_accuracy():
    # 100 images: 96 'happy' predicted right with margin, 4 'disgust' scored as happy but with disgust
    # second; boosting disgust flips them right first, then flips happy ones wrong.
    rng = np.random.default_rng(0)
    labels = np.array([3] * 96 + [1] * 4)
    probs = np.full((100, 7), 0.01)
    probs[:, 3] = np.r_[rng.uniform(0.5, 0.9, 96), [0.5] * 4]
    probs[:, 1] = np.r_[rng.uniform(0.02, 0.2, 96), [0.2] * 4]
    tau = balancing_tau(labels, probs, PRIOR, within=0.01)
    pred = (probs * prior_factor(PRIOR, tau)).argmax(1)
    assert (pred[96:] == 1).all()  # every disgust image recovered
    assert (pred == labels).mean() >= (probs.argmax(1) == labels).mean() - 0.01
    assert balancing_tau(labels, probs, PRIOR, within=0.0) <= tau


def test_fp32_is_exact_and_bf16_close_but_really_bf16():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48 * 48, 7))
    images = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    prep = preprocessing(0.5, 0.25, 48, [1 / 7] * 7)
    x = (images.reshape(64, -1) / 255.0 - 0.5) / 0.25  # the same arithmetic in float64
    w, b = (p.detach().double().numpy() for p in model[1].parameters())
    logits = x @ w.T + b
    reference = np.exp(logits - logits.max(1, keepdims=True))
    reference /= reference.sum(1, keepdims=True)
    fp32 = predict_proba(model, images, prep, precision="fp32")
    bf16 = predict_proba(model, images, prep, precision="bf16")
    assert np.abs(fp32 - reference).max() < 1e-5
    assert 0 < np.abs(bf16 - reference).max() < 0.05  # bf16 rounding shows: autocast really ran
    assert classification_metrics(reference.argmax(1), bf16)["accuracy"] > 0.9
