"""What a checkpoint costs to run: trainable parameters, and CPU inference time measured on
this machine with the checkpoint's own preprocessing and test-time augmentation (ten-crop
TTA runs the network ten times per face, and a deployment pays for that).

Measured once and cached in the cache folder (FER_CACHE_DIR, `cost.json`, one entry per
checkpoint keyed by its content, this module's COST_VERSION and the machine), so a sweep's
trials are timed once each, a changed checkpoint or measurement is never served an old figure,
and reading a results folder writes nothing into it. An entry holds the PyTorch cost and, once
asked for, the int8 ONNX export's (`int8_cost`).
"""
from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from fer.atomic import JsonEntries, digest
from fer.checkpoint import Checkpoint, checkpoint_file
from fer.data.cache import default_cache_dir
from fer.evaluate import predict_checkpoint
from fer.models import count_params

COST_FILE = "cost.json"
COST_VERSION = 2  # part of the cache key: raise it whenever measure_cost measures differently
LATENCY_RUNS = 20  # batch-1 calls timed after 3 warm-up calls; the median is reported
THROUGHPUT_BATCH = 256


def machine_key() -> str:
    return f"{platform.node()} {platform.processor() or platform.machine()} {torch.get_num_threads()} threads"


def measure_cost(ckpt: Checkpoint) -> dict:
    """{params, latency_ms (median, batch 1), images_per_s (batch 256)} on the CPU."""
    faces = np.random.default_rng(0).integers(0, 256, (THROUGHPUT_BATCH, 48, 48), dtype=np.uint8)
    model = ckpt.model.cpu().eval()
    with torch.inference_mode():
        for _ in range(3):
            predict_checkpoint(ckpt, faces[:1])
        times = []
        for i in range(LATENCY_RUNS):
            t = time.perf_counter()
            predict_checkpoint(ckpt, faces[i:i + 1])
            times.append(time.perf_counter() - t)
        predict_checkpoint(ckpt, faces)  # warm-up at the large batch
        t = time.perf_counter()
        predict_checkpoint(ckpt, faces)
        batch_s = time.perf_counter() - t
    return {"params": count_params(model)["trainable"], "latency_ms": 1000 * statistics.median(times),
            "images_per_s": THROUGHPUT_BATCH / batch_s, "tta": ckpt.views}


def checkpoint_cost(path: str | Path) -> dict:
    """measure_cost of a checkpoint, from cost.json when that was measured for this very file on
    this machine, else measured now and cached."""
    return _cached(path, "torch", lambda file: measure_cost(Checkpoint.load(file)))


def int8_cost(path: str | Path) -> dict:
    """What the checkpoint's int8 ONNX export (fer.ship.quantize) would cost and whether it passes its
    gate: {int8_latency_ms, int8_images_per_s, int8_agreement, int8_passed}; cached like the fp32 cost."""
    return _cached(path, "int8", _measure_int8)


def _measure_int8(file: Path) -> dict:
    """fer export --int8's pipeline (fer.ship.quantize.write_int8) into a temporary folder, for its figures."""
    import tempfile

    from fer.ship.export import export, load_exported
    from fer.ship.quantize import checkpoint_faces, write_int8

    ckpt = Checkpoint.load(file)
    calibration, val = checkpoint_faces(ckpt)
    with tempfile.TemporaryDirectory(prefix="fer-int8-") as d:
        fp32 = export(ckpt, "onnx", Path(d) / "fp32.onnx")
        checked, _, cost = write_int8(fp32, Path(d) / "int8.onnx", calibration, val.images, val.require_labels(),
                                      load_exported)
    return {"int8_latency_ms": cost.ms_per_face, "int8_images_per_s": cost.faces_per_s,
            "int8_agreement": checked.agreement, "int8_passed": checked.passed}


def _cached(path: str | Path, variant: str, measure) -> dict:
    """The checkpoint's entry in cost.json holds one figure set per variant; its key names the
    checkpoint's content, COST_VERSION and the machine, so any other key is measured again."""
    path = checkpoint_file(path)
    store = JsonEntries(default_cache_dir() / COST_FILE)
    key = f"{digest(path)} v{COST_VERSION} {machine_key()}"
    held = store.read().get(key)
    held = held if isinstance(held, dict) else {}
    if isinstance(held.get(variant), dict):
        return held[variant]
    figures = measure(path)
    store.put(key, {**held, variant: figures})  # (a read-only cache folder: the figures are still returned)
    return figures
