"""configs/ by kind: every top-level file is a search space, every file in runs/ a run config,
every file in cluster/ a Ray cluster launcher file; nothing else lies there."""
from pathlib import Path

import pytest
import yaml

from fer.config import load_run
from search.space import load_sweeps

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_top_level_files_are_search_spaces(path):
    sweeps = load_sweeps(str(path))
    assert sweeps and all(s.params for s in sweeps)


@pytest.mark.parametrize("path", sorted((CONFIGS / "runs").glob("*.yaml")), ids=lambda p: p.name)
def test_runs_are_run_configs(path):
    run = load_run(str(path))
    assert run["model"]["name"] and run["train"]["epochs"] >= 1


@pytest.mark.parametrize("path", sorted((CONFIGS / "cluster").glob("*.yaml")), ids=lambda p: p.name)
def test_cluster_files_are_ray_launcher_files(path):
    """Valid under the schema `ray up` checks a file against (shipped with Ray), and ready for a
    sweep: the project and the data copied up, torch's CUDA build installed before the rest."""
    import json

    import jsonschema
    import ray

    doc = yaml.safe_load(path.read_text())
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert {"cluster_name", "provider", "auth"} <= set(doc) and doc["provider"]["type"]
    assert "." in doc["file_mounts"].values() and any(k.endswith(".csv.gz") for k in doc["file_mounts"])
    torch_at = next(i for i, c in enumerate(doc["setup_commands"]) if "torch==" in c and "whl/cu" in c)
    assert torch_at < next(i for i, c in enumerate(doc["setup_commands"]) if "requirements.txt" in c)
    pin = next(line for line in (CONFIGS.parent / "requirements.txt").read_text().splitlines()
               if line.startswith("torch=="))
    assert f"{pin} " in doc["setup_commands"][torch_at]  # the version the project pins, CUDA build


def test_no_file_lies_outside_the_kinds():
    kinds = {CONFIGS, CONFIGS / "runs", CONFIGS / "cluster"}
    stray = [p for p in CONFIGS.rglob("*") if p.is_file() and p.name != "README.md"
             and not (p.suffix == ".yaml" and p.parent in kinds)]
    assert not stray
