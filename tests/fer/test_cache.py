"""fer.data.cache: parsed data, probabilities and fetched files kept under a size limit, least
recently used first out; `fer cache` shows and clears them, never the measurements or a staged
study."""
import os

import numpy as np
import pytest

from fer.cli import main
from fer.data.cache import ArrayCache, default_cache_dir


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FER_CACHE_MAX_BYTES", str(2_500_000))  # room for two entries of 1 MB
    return ArrayCache()


def _put(cache, key: str, when: float) -> None:
    cache.put(key, {"a": np.zeros(1_000_000, np.uint8)})
    os.utime(default_cache_dir() / f"{key}.npz", (when, when))


def test_the_least_recently_used_entry_goes_first(cache):
    _put(cache, "old", 1000.0)
    _put(cache, "newer", 2000.0)
    assert cache.get("old") is not None  # used now: "newer" is the least recently used
    cache.put("third", {"a": np.zeros(1_000_000, np.uint8)})
    assert sorted(p.stem for p in default_cache_dir().glob("*.npz")) == ["old", "third"]


def test_an_entry_larger_than_the_limit_is_still_kept_once_written(cache, monkeypatch):
    monkeypatch.setenv("FER_CACHE_MAX_BYTES", "10")
    cache.put("big", {"a": np.zeros(1000, np.uint8)})
    assert cache.get("big") is not None  # the one just written stays; the next write evicts it


def test_fer_cache_shows_and_clears_only_what_can_be_made_again(cache, capsys):
    _put(cache, "parsed", 1000.0)
    cache.put("probs-0123", {"probs": np.zeros((10, 7), np.float32)})
    root = default_cache_dir()
    (root / "speed.json").write_text("{}")
    study = root / "remote" / "studies" / "abc" / "optuna.db"
    study.parent.mkdir(parents=True)
    study.write_bytes(b"sqlite")
    fetched = root / "remote" / "0123" / "checkpoint.pt"
    fetched.parent.mkdir(parents=True)
    fetched.write_bytes(b"x" * 2048)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert "limit 0.00 GiB" in out and "parsed datasets: 1, 1.0 MiB" in out
    assert "checkpoints' validation probabilities: 1, 0.0 MiB" in out
    assert "files fetched from storage URIs: 1, 0.0 MiB" in out and "staged here (never evicted): 1" in out
    assert main(["cache", "--clear"]) == 0
    assert "cleared 3 entries" in capsys.readouterr().out
    assert not list(root.glob("*.npz")) and not fetched.parent.exists()
    assert (root / "speed.json").exists() and study.exists()


def test_a_bad_limit_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FER_CACHE_MAX_BYTES", "1GB")
    assert main(["cache"]) == 2
    assert "FER_CACHE_MAX_BYTES: expected a number of bytes, got '1GB'" in capsys.readouterr().err
