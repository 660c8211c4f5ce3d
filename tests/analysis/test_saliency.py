"""Explanations on toy models whose answers are known."""
import numpy as np
import pytest
import torch
from torch import nn

from analysis.saliency import attribute, mask_share, randomisation_check, reinitialised

PIXEL = (20, 31)


class OnePixel(nn.Module):
    """Logit k = w_k * x[PIXEL]: only that pixel can matter."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1, 1, 7))

    def forward(self, x):
        return x[:, 0, PIXEL[0], PIXEL[1]][:, None] * self.w


@pytest.mark.parametrize("method", ["gradient", "smoothgrad", "integrated_gradients"])
def test_one_pixel_model_gets_its_saliency_there(method):
    x = torch.randn(3, 1, 48, 48)
    maps = attribute(OnePixel(), x, torch.tensor([0, 6, 6]), method)
    assert maps.shape == (3, 48, 48)
    for m in maps:
        assert np.unravel_index(m.argmax(), m.shape) == PIXEL
        assert m.sum() == pytest.approx(m[PIXEL], rel=1e-5)  # nothing anywhere else


class LeftHalf(nn.Module):
    """A conv net whose evidence is only in the left half of the image."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.last_conv_block = "features"
        self.head = nn.Linear(4, 7)

    def forward(self, x):
        f = self.features(x)[..., :24]  # (B, 4, 48, 24): the right half never reaches the head
        return self.head(f.mean((2, 3)))


def test_gradcam_lights_the_region_the_model_uses():
    torch.manual_seed(0)
    model = LeftHalf()
    x = torch.rand(2, 1, 48, 48)
    cam = attribute(model, x, torch.tensor([1, 2]), "gradcam")
    grad = attribute(model, x, torch.tensor([1, 2]), "gradient")
    assert grad[:, :, 26:].sum() == 0 and grad[:, :, :22].sum() > 0
    assert cam.shape == (2, 48, 48)
    masks = np.zeros((2, 48, 48), bool)
    masks[:, :, :25] = True  # the 3x3 conv lets column 24 reach the kept half
    share = mask_share({"gradient": grad}, masks)["gradient"]
    assert share["share_inside"] > 0.99 and share["area_share"] == pytest.approx(25 / 48)


def test_gradcam_is_skipped_without_conv_block():
    assert attribute(OnePixel(), torch.randn(1, 1, 48, 48), torch.tensor([0]), "gradcam") is None


def test_randomisation_check_flags_maps_that_ignore_the_weights():
    rng = np.random.default_rng(0)
    same = rng.random((4, 48, 48))
    different = rng.random((4, 48, 48))
    check = randomisation_check({"edge": same, "learned": same}, {"edge": same + 1e-3, "learned": different})
    assert not check["edge"]["reliable"] and check["edge"]["spearman"] > 0.99
    assert check["learned"]["reliable"] and abs(check["learned"]["spearman"]) < 0.1


def test_reinitialised_changes_weights_not_architecture():
    from fer.models import create_model

    model = create_model("small_cnn")
    fresh = reinitialised(model)
    a, b = dict(model.named_parameters()), dict(fresh.named_parameters())
    assert a.keys() == b.keys()
    assert not torch.equal(a["features.block1.conv1.weight"], b["features.block1.conv1.weight"])
