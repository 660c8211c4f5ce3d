import pytest
import torch

from fer.errors import ConfigError
from fer.models import count_params, create_model, list_models, spec_params, summary

SINGLE = list_models(searchable_only=True)  # an ensemble is built from members: tests/fer/test_ensemble.py


def test_the_models_a_run_trains_are_every_name_but_the_ensemble():
    assert SINGLE == [n for n in list_models() if n != "ensemble"] and {"seed_cnn", "vgg_cnn", "dnn"} <= set(SINGLE)


@pytest.mark.parametrize("name", SINGLE)
def test_every_registered_model_maps_faces_to_seven_logits(name):
    model = create_model(name).eval()
    out = model(torch.randn(3, 1, 48, 48))
    assert out.shape == (3, 7) and torch.isfinite(out).all()
    assert model.family in ("cnn", "dnn")


def _ensemble():
    from fer.checkpoint import Checkpoint, preprocessing
    from fer.ship.ensemble import member_entry

    member = create_model("seed_cnn")
    spec = {"name": "cnn", **{k: list(v) if isinstance(v, tuple) else v for k, v in vars(member.config).items()}}
    ckpt = Checkpoint.build(spec, member.state_dict(), preprocessing(0.5, 0.25, 48, [1 / 7] * 7), {"tta": "none"})
    return create_model("ensemble", members=[member_entry(ckpt, 1.0, "t")])


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_keeps_the_model_contract(name):
    from fer.models.contract import FerModel, check

    model = _ensemble() if name == "ensemble" else create_model(name)
    assert isinstance(model, FerModel) and check(model) == []


def test_the_contract_check_names_what_a_model_breaks():
    from fer.models.contract import check

    model = create_model("seed_dnn")
    model.first_activation = "layers.nope"
    assert check(model) == ["first_activation 'layers.nope' is not a submodule"]
    del model.last_conv_block
    assert check(model) == ["no attribute 'last_conv_block'"]


def test_the_contract_check_names_a_parameter_backward_does_not_reach():
    from fer.models.contract import check

    model = create_model("small_cnn")
    model.unused = torch.nn.Linear(2, 2)  # trainable, but outside the forward pass
    assert check(model) == ["backward leaves unused.weight without a gradient",
                            "backward leaves unused.bias without a gradient"]


def test_a_model_whose_input_side_is_fixed_refuses_another_crop():
    """The DNN and a flatten-headed CNN say they need their input side; a gap-headed CNN takes any crop."""
    from fer.config import resolve_run

    for model in ({"name": "seed_dnn"}, {"name": "cnn", "head": "flatten"}):
        with pytest.raises(ConfigError, match="model.input_size: 48 must equal train.crop_size 40"):
            resolve_run({"model": model, "train": {"crop_size": 40}})
    assert resolve_run({"model": {"name": "vgg_cnn"}, "train": {"crop_size": 40}})["train"]["crop_size"] == 40


def test_the_registry_names_the_families_a_sweep_searches():
    from fer.models.registry import family_names

    assert family_names(searchable_only=True) == ["cnn", "dnn"] and "ensemble" in family_names()


@pytest.mark.parametrize("name", SINGLE)
def test_named_layers_exist(name):
    model = create_model(name)
    modules = dict(model.named_modules())
    for attr in ("first_conv", "first_activation", "last_conv_block"):
        layer = getattr(model, attr)
        assert layer is None or layer in modules
    if model.family == "cnn":
        assert isinstance(modules[model.first_conv], torch.nn.Conv2d)


def test_report_parameter_counts():
    assert count_params(create_model("seed_cnn")) == {"total": 1_278_590, "trainable": 1_276_606,
                                                       "non_trainable": 1_984}
    assert count_params(create_model("seed_dnn"))["total"] == 1_276_409


@pytest.mark.parametrize("name", SINGLE)
def test_a_spec_is_counted_as_its_model_is_without_building_it(name):
    model = create_model(name)
    spec = {"name": model.family, **{k: list(v) if isinstance(v, tuple) else v for k, v in vars(model.config).items()}}
    assert spec_params(spec) == count_params(model)


def test_a_spec_too_large_to_build_is_still_counted():
    """(A parameter budget's bisection tries widths up to 30 times the base ones: 4e10 float32
    weights here, 160 GB, which only a model with no storage can hold.)"""
    widths = [200_000, 200_000]
    expected = 48 * 48 * widths[0] + widths[0] + widths[0] * widths[1] + widths[1] + widths[1] * 7 + 7
    assert spec_params({"name": "dnn", "widths": widths, "norm": "none", "input_pool": 1})["trainable"] == expected


def test_summary_prints_report_totals():
    text = summary(create_model("seed_cnn"), "seed_cnn")
    assert "Total params: 1,278,590" in text and "Trainable params: 1,276,606" in text
    assert "Non-trainable params: 1,984" in text
    assert "features.block5.conv2 (Conv2d)" in text and "(None, 256, 3, 3)" in text


def test_family_options_change_the_network():
    vgg = create_model("cnn", channels=[8, 16], kernel_sizes=[3, 3], pool="max", pool_last=True, head="flatten",
                       head_hidden=[32], act_per_conv=True, batch_norm=False)
    assert vgg(torch.randn(2, 1, 48, 48)).shape == (2, 7)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in vgg.modules())
    dnn = create_model("dnn", widths=[64, 32], norm="layer", activation="gelu")
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in dnn.modules()) == 2
    pooled = create_model("dnn", widths=[64], input_pool=2)
    assert pooled.layers.fc1.in_features == 24 * 24 and pooled(torch.randn(2, 1, 48, 48)).shape == (2, 7)
    face = torch.zeros(1, 1, 48, 48)
    face[..., 0, 0] = 4.0  # one pixel of the first 2x2 block: that input is their mean, 1.0
    assert pooled.layers.flatten(pooled.layers.pool(face))[0, 0] == 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"chanels": [8]}, "model.chanels: unknown key"),
    ({"channels": [8, 16], "kernel_sizes": [3, 3, 3]}, "kernel_sizes has 3 entries"),
    ({"pool": "median"}, "model.pool: 'median' is not one of"),
    ({"dropout": "high"}, "model.dropout: expected float"),
])
def test_bad_config_names_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        create_model("cnn", **kwargs)


def test_unknown_model_name():
    with pytest.raises(ConfigError, match="unknown model 'resnet'"):
        create_model("resnet")
