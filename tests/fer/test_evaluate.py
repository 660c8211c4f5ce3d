import numpy as np
import pytest
import torch

from fer.evaluate import adjust_for_prior, classification_metrics, predict_proba


class FixedLogits(torch.nn.Module):
    """Every image gets the same logits, whatever its pixels."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


PRIOR = [0.14, 0.015, 0.14, 0.25, 0.17, 0.11, 0.175]  # FER2013's training shares, roughly


def test_logit_adjustment_divides_by_the_prior():
    probs = torch.tensor([[0.30, 0.10, 0.10, 0.30, 0.10, 0.05, 0.05]])
    assert torch.equal(adjust_for_prior(probs, {"class_prior": PRIOR}), probs)  # tau 0: unchanged
    adjusted = adjust_for_prior(probs, {"class_prior": PRIOR, "logit_adjust": 1.0})
    expected = probs / torch.tensor(PRIOR)
    assert torch.allclose(adjusted, expected / expected.sum(), atol=1e-6)
    assert adjusted.argmax().item() == 1  # the rare class now wins: 0.10 / 0.015 beats 0.30 / 0.14


def test_predictions_follow_the_checkpoints_adjustment():
    model = FixedLogits([2.0, 0.5, 0.0, 2.2, 0.0, 0.0, 0.0])
    images = np.zeros((5, 48, 48), np.uint8)
    prep = {"mean": 0.5, "std": 0.25, "crop_size": 48, "class_prior": PRIOR}
    plain = predict_proba(model, images, prep)
    adjusted = predict_proba(model, images, {**prep, "logit_adjust": 1.0})
    assert set(plain.argmax(1)) == {3} and set(adjusted.argmax(1)) == {1}
    assert np.allclose(adjusted.sum(1), 1.0, atol=1e-6)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_bf16_predictions_match_fp32_closely(precision):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48 * 48, 7))
    images = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    prep = {"mean": 0.5, "std": 0.25, "crop_size": 48}
    exact = predict_proba(model, images, prep, precision="fp32")
    probs = predict_proba(model, images, prep, precision=precision)
    assert np.abs(probs - exact).max() < (1e-6 if precision == "fp32" else 0.05)
    labels = exact.argmax(1)
    assert classification_metrics(labels, probs)["accuracy"] > 0.9
