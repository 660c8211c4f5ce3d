import gzip
from pathlib import Path

import numpy as np
import pytest

SHARED_FER = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013.csv.gz"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "fer-cache"))


def kaggle_rows(n: int, seed: int = 0, usages=("Training", "PublicTest")) -> tuple[str, np.ndarray, np.ndarray]:
    """A tiny hand-made Kaggle-format CSV: text, its images (n,48,48) and labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, n)
    lines = ["emotion,pixels,Usage"]
    for i in range(n):
        lines.append(f"{labels[i]},{' '.join(map(str, images[i].ravel()))},{usages[i % len(usages)]}")
    return "\n".join(lines) + "\n", images, labels


@pytest.fixture
def write_csv(tmp_path):
    def write(text: str, name: str = "data.csv") -> Path:
        path = tmp_path / name
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
        return path
    return write


@pytest.fixture(scope="session")
def synthetic():
    from fer.data import SyntheticSpec, make_synthetic
    return make_synthetic(SyntheticSpec(n_per_class=60, seed=1))
