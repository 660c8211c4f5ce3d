"""search.resources: what the cluster's nodes hold, asked before a sweep (no Ray started here)."""
import pytest

import search.resources as resources
from fer.errors import ConfigError
from search.space import load_sweeps
from tests.factories import tiny_sweep


def test_trials_at_once_sums_what_each_node_holds():
    nodes = [{"CPU": 8.0, "GPU": 2.0}, {"CPU": 4.0}]
    assert resources.trials_at_once(2, 0.5, nodes) == 4  # the GPU node: 8 CPUs / 2 each, 2 GPUs / 0.5 each
    assert resources.trials_at_once(1, 0, nodes) == 12


def test_gpus_per_trial_auto_without_a_gpu_node_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "node_resources", lambda: [{"CPU": 2.0}])
    path = tiny_sweep(tmp_path / "space.yaml")
    path.write_text(path.read_text().replace("gpus_per_trial: 0", "gpus_per_trial: auto"))
    space = load_sweeps(str(path))[0]
    with pytest.raises(ConfigError, match=r"gpus_per_trial: auto needs a node with a GPU, and the Ray cluster "
                                          r"\(1 node, 2 CPUs\) has none: set gpus_per_trial: 0"):
        resources.settle_packing(space, faces=None)


def test_a_bad_gpus_per_trial_names_the_key(tmp_path):
    path = tiny_sweep(tmp_path / "space.yaml")
    path.write_text(path.read_text().replace("gpus_per_trial: 0", "gpus_per_trial: most"))
    with pytest.raises(ConfigError, match=r"settings.gpus_per_trial: expected float or one of 'auto', got 'most'"):
        load_sweeps(str(path))
