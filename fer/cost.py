"""What a checkpoint costs to run: trainable parameters, and CPU inference time measured on
this machine with the checkpoint's own preprocessing and test-time augmentation (ten-crop
TTA runs the network ten times per face, and a deployment pays for that).

Measured once and cached beside the checkpoint (`cost.json`, written atomically), keyed by the
checkpoint's content, this module's COST_VERSION and the machine, so a sweep's trials are
timed once each and a changed checkpoint or measurement is never served an old figure.
"""
from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from fer.atomic import digest, discard_corrupt, write_atomic
from fer.checkpoint import checkpoint_file, load_model
from fer.evaluate import predict_checkpoint
from fer.models import count_params

COST_FILE = "cost.json"
COST_VERSION = 1  # part of the cache key: raise it whenever measure_cost measures differently
LATENCY_RUNS = 20  # batch-1 calls timed after 3 warm-up calls; the median is reported
THROUGHPUT_BATCH = 256


def machine_key() -> str:
    return f"{platform.node()} {platform.processor() or platform.machine()} {torch.get_num_threads()} threads"


def measure_cost(model: torch.nn.Module, payload: dict) -> dict:
    """{params, latency_ms (median, batch 1), images_per_s (batch 256)} on the CPU."""
    faces = np.random.default_rng(0).integers(0, 256, (THROUGHPUT_BATCH, 48, 48), dtype=np.uint8)
    model = model.cpu().eval()
    with torch.inference_mode():
        for _ in range(3):
            predict_checkpoint(model, payload, faces[:1])
        times = []
        for i in range(LATENCY_RUNS):
            t = time.perf_counter()
            predict_checkpoint(model, payload, faces[i:i + 1])
            times.append(time.perf_counter() - t)
        predict_checkpoint(model, payload, faces)  # warm-up at the large batch
        t = time.perf_counter()
        predict_checkpoint(model, payload, faces)
        batch_s = time.perf_counter() - t
    return {"params": count_params(model)["trainable"], "latency_ms": 1000 * statistics.median(times),
            "images_per_s": THROUGHPUT_BATCH / batch_s, "tta": tta_of(payload)}


def tta_of(payload: dict) -> str:
    """The test-time views a checkpoint runs: its own, or an ensemble's members' ("flip+shifts")."""
    if members := payload["model"].get("members"):  # only an ensemble has members
        return "+".join(m["tta"] for m in members)
    return payload["train_config"].get("tta", "none")


def checkpoint_cost(path: str | Path) -> dict:
    """measure_cost of a checkpoint, from its cost.json when that was measured for this very file
    on this machine, else measured now and cached."""
    path = checkpoint_file(Path(path))
    key = {"checkpoint_digest": digest(path), "cost_version": COST_VERSION, "machine": machine_key()}
    cache = path.parent / COST_FILE
    if cache.exists():
        try:
            cached = json.loads(cache.read_text())
            if all(cached.get(k) == v for k, v in key.items()):
                return cached
        except (OSError, ValueError) as e:
            discard_corrupt(cache, e)
    cost = {**measure_cost(*load_model(path)), **key}
    try:
        write_atomic(cache, lambda f: f.write(json.dumps(cost, indent=2).encode()))
    except OSError:
        pass  # a read-only results folder: the figures are still returned
    return cost
