"""Validation probabilities in the cache folder (fer.ship.probs): keyed by the checkpoint's and the
images' content, written whole, rebuilt with one line when they cannot be read, and never written
into the results folder they were read from."""
import os

import numpy as np

import fer.ship.probs
from fer.checkpoint import Checkpoint
from fer.config import load_run
from fer.data import train_val
from fer.data.cache import default_cache_dir
from fer.train import Trainer, pick_device


def test_validation_probabilities_are_cached_by_content(tmp_path, synthetic, monkeypatch, capsys):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    train, val = train_val(synthetic)
    trainer = Trainer.from_run(load_run(None, ["model.name=seed_dnn", "train.epochs=1"]), train, val)
    trainer.fit()
    path = trainer.checkpoint({"run": 1}).save(tmp_path / "run" / "checkpoint.pt")
    calls = []
    real = fer.ship.probs.predict_checkpoint
    monkeypatch.setattr(fer.ship.probs, "predict_checkpoint", lambda *a: calls.append(1) or real(*a))

    def probs(images=val.images):
        return fer.ship.probs.cached_probs(Checkpoint.load(path), images, pick_device())

    def entries():
        return set(default_cache_dir().glob(fer.ship.probs.PROBS_PREFIX + "*.npz"))

    first = probs()
    assert np.array_equal(probs(), first) and len(calls) == 1  # the second from the cache
    probs(val.images[::-1].copy())  # other rows: computed, not served
    assert len(calls) == 2 and len(entries()) == 2
    stat = path.stat()
    trainer.checkpoint({"run": 2}).save(path)  # another file of the same size and time
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    before = entries()
    probs()
    assert len(calls) == 3
    (cache,) = entries() - before
    cache.write_bytes(cache.read_bytes()[:200])  # cut short
    assert np.array_equal(probs(), first) and len(calls) == 4
    err = capsys.readouterr().err
    assert f"fer: cache {cache} is unreadable" in err and len(err.splitlines()) == 1
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # the run folder as training left it
