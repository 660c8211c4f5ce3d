"""An in-process Ray (2 CPUs, 1 logical GPU) per test module, and the tiny data its sweeps train on."""
import os
from pathlib import Path

import pytest
import ray

from fer.data import load_data

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_cluster():
    os.environ["PYTHONPATH"] = f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"  # workers import tests.*
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def faces(tiny_csv):
    return load_data(str(tiny_csv))
