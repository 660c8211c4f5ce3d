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
    doc = yaml.safe_load(path.read_text())
    assert {"cluster_name", "provider"} <= set(doc)


def test_no_file_lies_outside_the_kinds():
    kinds = {CONFIGS, CONFIGS / "runs", CONFIGS / "cluster"}
    stray = [p for p in CONFIGS.rglob("*") if p.is_file() and p.name != "README.md"
             and not (p.suffix == ".yaml" and p.parent in kinds)]
    assert not stray
