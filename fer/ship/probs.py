"""Checkpoints' probabilities on their validation rows, the input of every ensemble: cached beside
each checkpoint (`val_probs.npz`, keyed by the checkpoint's and the images' content), so a second
ensemble of the same checkpoints costs seconds, and a changed checkpoint is never served stale."""
from __future__ import annotations

import numpy as np

from fer.atomic import digest
from fer.checkpoint import Checkpoint
from fer.data import split_for_training
from fer.data.cache import ArrayCache
from fer.errors import FerError
from fer.evaluate import predict_checkpoint
from fer.train import pick_device

PROBS_FILE = "val_probs.npz"
PROBS_VERSION = 2  # part of the cache key: raise it whenever the probabilities are computed differently


def validation_probs(members: list[tuple[str, str]], faces) -> tuple[np.ndarray, list[np.ndarray]]:
    """(labels, each member's probabilities) on the validation rows, which must be the same for all."""
    labels, probs, device = None, [], pick_device()
    for name, path in members:
        ckpt = Checkpoint.load(path)
        _, val, _ = split_for_training(faces, ckpt.train_config)
        if labels is not None and not np.array_equal(val.require_labels(), labels):
            raise FerError(f"{name} was validated on other rows than {members[0][0]}: their scores cannot be combined")
        labels = val.require_labels()
        probs.append(cached_probs(ckpt, val.images, device))
    return labels, probs


def cached_probs(ckpt: Checkpoint, images: np.ndarray, device) -> np.ndarray:
    """A checkpoint's validation probabilities, from val_probs.npz when it was computed from this
    very checkpoint file, these images and this PROBS_VERSION."""
    file = ckpt.path
    store, entry = ArrayCache(file.parent), PROBS_FILE.removesuffix(".npz")
    key = digest(file, extra=f"v{PROBS_VERSION}:{images.shape}:".encode() + np.ascontiguousarray(images).tobytes())
    held = store.get(entry)
    if held is not None and str(held.get("key")) == key and "probs" in held:
        return held["probs"]
    probs = predict_checkpoint(ckpt, images, device)
    store.put(entry, {"probs": probs, "key": np.array(key)})
    return probs
