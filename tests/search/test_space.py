import optuna
import pytest
import yaml

from fer.config import resolve_run
from fer.errors import ConfigError
from fer.models import count_params, create_model
from search.space import SearchSpace, load_sweeps, unflatten

SEED_CNN_PARAMS = 1_276_606


def _sample(space: SearchSpace, n: int, seed: int = 0) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(space.define_by_run(trial))
        study.tell(trial, 0.0)
    return out


def _params(flat: dict) -> int:
    model = resolve_run(unflatten(flat))["model"]
    return count_params(create_model(model["name"], **{k: v for k, v in model.items() if k != "name"}))["trainable"]


@pytest.mark.parametrize("path", ["configs/cnn.yaml", "configs/dnn.yaml", "search/spaces/quickstart.yaml"])
def test_shipped_spaces_sample_valid_runs(path):
    for space in load_sweeps(path):
        for flat in _sample(space, 6):
            run = resolve_run(unflatten(flat))  # raises on any invalid sampled config
            assert run["train"]["epochs"] == space.settings.epochs_cap()


def test_choices_of_lists_and_conditionals():
    space = SearchSpace(yaml.safe_load("""
        family: cnn
        model: {channels: {choice: [[8, 16], [16, 32]]}, kernel_sizes: [3]}
        train:
          optimizer: {choice: [sgd, adam]}
          lr: {loguniform: [0.001, 0.1]}
          momentum: {uniform: [0.8, 0.95], when: {optimizer: sgd}}
          batch_size: {int: [16, 64]}
    """), "inline")
    samples = _sample(space, 30)
    assert {tuple(s["model/channels"]) for s in samples} == {(8, 16), (16, 32)}
    for s in samples:
        assert ("train/momentum" in s) == (s["train/optimizer"] == "sgd")
        assert 0.001 <= s["train/lr"] <= 0.1 and 16 <= s["train/batch_size"] <= 64
    dists = space.distributions()
    assert isinstance(dists["train/lr"], optuna.distributions.FloatDistribution) and dists["train/lr"].log


def test_dnn_space_respects_parameter_budget():
    space = load_sweeps("configs/dnn.yaml")[0]
    counts = [_params(flat) for flat in _sample(space, 12, seed=3)]
    assert all(abs(c / SEED_CNN_PARAMS - 1) <= 0.05 for c in counts), counts
    assert len(set(counts)) > 1  # different shapes, same budget


def test_budget_rescales_out_of_range_widths():
    space = SearchSpace({"family": "dnn", "settings": {"param_budget": {"target": 500_000, "scale": "model.widths"}},
                         "model": {"widths": {"choice": [[4096, 2048], [16]]}}}, "inline")
    for flat in _sample(space, 6):
        assert abs(_params(flat) / 500_000 - 1) <= 0.05


def test_warm_start_points_are_enqueued_first():
    space = load_sweeps("configs/cnn.yaml")[0]
    points = space.warm_start_points()
    assert points and points[0]["model/name"] == "vgg_cnn"
    study = optuna.create_study()
    study.enqueue_trial(points[0])
    first = space.define_by_run(study.ask())
    assert first["model/name"] == "vgg_cnn" and first["train/lr"] == 0.01 and first["train/crop_size"] == 40


@pytest.mark.parametrize("doc, message", [
    ({"family": "cnn", "train": {"lrate": 0.1}}, r"train\.lrate: unknown key"),
    ({"family": "cnn", "model": {"chanels": [8]}}, r"model\.chanels: unknown key"),
    ({"family": "cnn", "train": {"lr": {"loguniform": [0.1]}}}, r"train\.lr\.loguniform: expected \[low, high\]"),
    ({"family": "cnn", "train": {"lr": {"loguniform": [0.0, 0.1]}}}, r"train\.lr\.loguniform: low must be > 0"),
    ({"family": "cnn", "train": {"lr": {"uniform": [0.1, 0.2], "normal": 1}}}, r"train\.lr: expected exactly one"),
    ({"family": "cnn", "train": {"batch_size": {"choice": []}}}, r"train\.batch_size\.choice: expected a non-empty"),
    ({"family": "cnn", "train": {"batch_size": {"int": [1.5, 8]}}}, r"train\.batch_size\.int: expected \[low, high\]"),
    ({"family": "cnn", "train": {"lr": "fast"}}, r"train\.lr: expected float"),
    ({"family": "cnn", "train": {"epochs": 3}}, r"train\.epochs: set settings\.max_epochs"),
    ({"family": "rnn"}, r"family: expected one of"),
    ({"family": "cnn", "settings": {"num_sample": 3}}, r"settings\.num_sample: unknown key"),
    ({"family": "cnn", "settings": {"metric": "loss"}}, r"settings\.metric"),
    ({"family": "cnn", "settings": {"max_epochs": 3, "grace_period": 6}}, r"settings\.grace_period: 6 exceeds"),
    ({"family": "cnn", "optimiser": "sgd"}, r"optimiser: unknown key"),
    ({"family": "cnn", "settings": {"explore_share": 1.5}}, r"settings\.explore_share: must be a number in \(0, 1\]"),
    ({"family": "cnn", "settings": {"grow_trials": "yes"}}, r"settings\.grow_trials: expected bool"),
    ({"family": "cnn", "settings": {"recheck_rungs": 1}}, r"settings\.recheck_rungs: expected bool"),
    ({"family": "cnn", "settings": {"time_budget_s": -5}}, r"settings\.time_budget_s: must be a positive number"),
    ({"family": "cnn", "settings": {"time_budget_s": 0}}, r"settings\.time_budget_s: must be a positive number"),
    ({"family": "cnn", "settings": {"cpus_per_trial": 0}}, r"settings\.cpus_per_trial: must be a positive number"),
    ({"family": "cnn", "settings": {"gpus_per_trial": -1}}, r"settings\.gpus_per_trial: must be a number >= 0"),
    ({"family": "cnn", "settings": {"max_concurrent": 0}}, r"settings\.max_concurrent: must be a positive integer"),
    ({"family": "cnn", "train": {"optimizer": {"choice": ["sgd", "adamm"]}}},
     r"train\.optimizer\.choice\[1\] = 'adamm': train\.optimizer: 'adamm' is not one of"),
    ({"family": "cnn", "model": {"channels": {"choice": [[8, 16], 32]}, "kernel_sizes": [3]}},
     r"model\.channels\.choice\[1\] = 32: model\.channels: expected a list"),
    ({"family": "cnn", "train": {"batch_size": {"int": [0, 64]}}}, r"train\.batch_size\.int\[0\] = 0: "),
    ({"family": "cnn", "train": {"label_smoothing": {"uniform": [0.0, 1]}}, "model": {"dropout": "x"}},
     r"model\.dropout: expected float"),
    ({"family": "cnn", "train": {"optimizer": {"choice": ["sgd", "adam"]},
                                 "momentum": {"uniform": [0.8, 0.95], "when": {"optimzer": "sgd"}}}},
     r"train\.momentum\.when\.optimzer: not a parameter of this space \(parameters: optimizer, momentum\)"),
    ({"family": "cnn", "train": {"optimizer": {"choice": ["sgd", "adam"]},
                                 "momentum": {"uniform": [0.8, 0.95], "when": {"optimizer": "sgdd"}}}},
     r"train\.momentum\.when\.optimizer: 'sgdd' is never chosen"),
])
def test_errors_name_the_key(doc, message):
    with pytest.raises(ConfigError, match=message):
        SearchSpace(doc, "space.yaml")


def test_warm_start_outside_the_choices_is_an_error():
    doc = {"family": "cnn", "settings": {"warm_start": [{"train": {"optimizer": "rmsprop"}}]},
           "train": {"optimizer": {"choice": ["sgd", "adam"]}}}
    with pytest.raises(ConfigError, match=r"warm_start\[0\]\.train\.optimizer"):
        SearchSpace(doc, "space.yaml")


def test_cli_settings_override_file(tmp_path):
    spaces = load_sweeps("search/spaces/quickstart.yaml", {"num_samples": 3, "max_epochs": 2})
    assert [s.settings.num_samples for s in spaces] == [3, 3]
    assert all(s.fixed["train/epochs"] == 2 for s in spaces)


@pytest.mark.parametrize("metric, within", [("val_acc", 0.0), ("val_macro_f1", 0.01)])
def test_trials_monitor_the_sweep_metric_and_macro_f1_balances(metric, within):
    (space,) = load_sweeps("configs/dnn.yaml", {"metric": metric})
    run = resolve_run(unflatten(_sample(space, 1)[0]))
    assert run["train"]["monitor"] == metric and run["train"]["balance_within"] == within


def test_monitor_other_than_the_metric_is_an_error():
    doc = {"family": "dnn", "settings": {"metric": "val_acc"}, "train": {"monitor": "val_macro_f1"}}
    with pytest.raises(ConfigError, match="train.monitor"):
        SearchSpace(doc, "space.yaml")


def test_cli_flags_give_plain_random_search():
    from search.cli import _parser, _settings_overrides

    args = _parser().parse_args(["run", "configs/dnn.yaml", "--searcher", "random", "--scheduler", "fifo",
                                 "--no-warm-start", "--explore-share", "1"])
    (space,) = load_sweeps("configs/dnn.yaml", _settings_overrides(args))
    assert (space.settings.searcher, space.settings.scheduler) == ("random", "fifo")
    assert space.settings.explore_share == 1.0
    assert space.warm_start_points() == []
    (default,) = load_sweeps("configs/dnn.yaml", _settings_overrides(_parser().parse_args(["run"])))
    assert len(default.warm_start_points()) == 4


def test_scientific_notation_reads_as_floats(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("family: cnn\ntrain:\n  lr: {loguniform: [1e-4, 1E-2]}\n  weight_decay: 5e-4\n")
    (space,) = load_sweeps(str(path))
    assert space.params[0].args == (1e-4, 1e-2) and space.fixed["train/weight_decay"] == 5e-4


def test_every_choice_is_checked_not_only_the_first():
    doc = {"family": "dnn", "model": {"norm": {"choice": ["batch", "layer", "group"]}}}
    with pytest.raises(ConfigError, match=r"model\.norm\.choice\[2\] = 'group'"):
        SearchSpace(doc, "space.yaml")
