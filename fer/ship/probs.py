"""Checkpoints' probabilities on their validation rows, the input of every ensemble: cached in the
cache folder (FER_CACHE_DIR, `probs-<key>.npz`, the key hashing the checkpoint's and the images'
content), so a second ensemble of the same checkpoints costs seconds, a changed checkpoint is
never served stale, and reading a results folder writes nothing into it."""
from __future__ import annotations

import numpy as np

from fer.atomic import digest
from fer.checkpoint import Checkpoint
from fer.data import split_for_training
from fer.data.cache import PROBS_PREFIX, ArrayCache
from fer.errors import FerError
from fer.evaluate import predict_checkpoint
from fer.train import pick_device

PROBS_VERSION = 2  # part of the cache key: raise it whenever the probabilities are computed differently


def validation_probs(members: list[tuple[str, str | Checkpoint]], faces) -> tuple[np.ndarray, list[np.ndarray]]:
    """(labels, each member's probabilities) on the validation rows, which must be the same for all.
    A member is (name, checkpoint path) or (name, a Checkpoint already loaded)."""
    labels, probs, device = None, [], pick_device()
    for name, member in members:
        ckpt = member if isinstance(member, Checkpoint) else Checkpoint.load(member)
        _, val, _ = split_for_training(faces, ckpt.train_config)
        if labels is not None and not np.array_equal(val.require_labels(), labels):
            raise FerError(f"{name} was validated on other rows than {members[0][0]}: their scores cannot be combined")
        labels = val.require_labels()
        probs.append(cached_probs(ckpt, val.images, device))
    return labels, probs


def cached_probs(ckpt: Checkpoint, images: np.ndarray, device, cache: ArrayCache | None = None) -> np.ndarray:
    """A checkpoint's probabilities on `images` (N, 7), from the cache when they were computed from
    this very checkpoint file, these images and this PROBS_VERSION."""
    store = cache or ArrayCache()
    key = digest(ckpt.path, extra=f"v{PROBS_VERSION}:{images.shape}:".encode() + np.ascontiguousarray(images).tobytes())
    held = store.get(PROBS_PREFIX + key)
    if held is not None and "probs" in held:
        return held["probs"]
    probs = predict_checkpoint(ckpt, images, device)
    store.put(PROBS_PREFIX + key, {"probs": probs})
    return probs
