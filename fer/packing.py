"""Trials per GPU chosen by measurement, not by hand.

Whether one, two, four or eight trials sharing a GPU train the most images per second depends
on the GPU, the model, the batch size and the CPU-side work around each step. So a sweep's
`gpus_per_trial: auto` times the model's own training with k = 1, 2, 4, 8 processes at once on
one GPU (each its own CUDA context, as Ray's fractional-GPU trials are), for a few seconds
each after a warm-up, and `choose_packing` keeps the k with the highest total images/s that
leaves each trial at least MIN_SHARE of its speed alone. A count whose memory would not fit
(from k=1's peak) or that runs out of memory is left out, and so are the larger ones.
The choice is cached per GPU name, torch version, model shape, batch size and precision, like
fer.speed's precision choice. benchmarks/gpu_check.py reports the same measurement.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from fer.atomic import JsonEntries
from fer.data.cache import default_cache_dir

COUNTS = (1, 2, 4, 8)  # trials per GPU tried: Ray packs a GPU in fractions 1/k
MIN_SHARE = 0.5  # each trial keeps at least this share of its alone-speed
MEMORY_HEADROOM = 0.9  # k trials are tried only if k times k=1's peak fits in this share of the GPU
CACHE_FILE = "packing.json"


class Packing(NamedTuple):
    """Trials per GPU, and what was measured to decide."""

    trials_per_gpu: int
    rates: dict  # k -> total training images/s with k trials at once; None: did not fit or ran out of memory
    how: str  # "measured", "cached", or "no CUDA device" (nothing to measure: one trial per GPU)
    device: str = ""

    @property
    def gpus_per_trial(self) -> float:
        return 1.0 / self.trials_per_gpu

    def describe(self) -> str:
        """`4 trials per GPU (measured on cuda:NVIDIA H200: 1: 2100, 2: 4000, 4: 7300, 8: 7600 images/s in all)`"""
        shown = ", ".join(f"{k}: {'out of memory' if r is None else f'{r:.0f}'}" for k, r in self.rates.items())
        where = f" on {self.device}" if self.device else ""
        return (f"{self.trials_per_gpu} trial{'s' * (self.trials_per_gpu != 1)} per GPU ({self.how}{where}"
                + (f"; {shown} images/s in all" if shown else "") + ")")


def choose_packing(rates: dict) -> int:
    """The rule: among the counts that ran, the one with the highest total images/s whose
    trials each keep at least MIN_SHARE of the alone-speed (rates[1]); a tie goes to fewer."""
    alone = rates.get(1)
    if not alone:
        return 1
    fair = {k: r for k, r in rates.items() if r is not None and r / k >= MIN_SHARE * alone}
    return max(fair, key=lambda k: (fair[k], -k))


def measure_packing(timer, counts=COUNTS, key: str = "", cache: PackingCache | None = None,
                    device: str = "") -> Packing:
    """Time `timer.rate(k)` (total images/s, or None when k did not fit) for each count, stopping
    after the first that ran out of memory or left its trials under MIN_SHARE (more only gets
    worse), then choose. Cached under `key` when one is given."""
    cache = cache or PackingCache()
    if key and (hit := cache.get(key)) is not None:
        return hit._replace(how="cached")
    rates: dict[int, float | None] = {}
    for k in counts:
        rates[k] = timer.rate(k)
        alone = rates.get(1)
        if rates[k] is None or not alone or rates[k] / k < MIN_SHARE * alone:
            break
    packing = Packing(choose_packing(rates), rates, "measured", device)
    if key:
        cache.put(key, packing)
    return packing


class PackingCache:
    """Chosen packings by key, in one JSON file under FER_CACHE_DIR (fer.atomic.JsonEntries)."""

    def __init__(self, root: str | Path | None = None):
        self.entries = JsonEntries(Path(root or default_cache_dir()) / CACHE_FILE)
        self.path = self.entries.path

    def get(self, key: str) -> Packing | None:
        entry = self.entries.read().get(key)
        try:
            rates = {int(k): v for k, v in entry["rates"].items()}
            return Packing(int(entry["trials_per_gpu"]), rates, "cached", str(entry.get("device", "")))
        except (TypeError, KeyError, ValueError, AttributeError):
            return None

    def put(self, key: str, packing: Packing) -> None:
        self.entries.put(key, {"trials_per_gpu": packing.trials_per_gpu, "rates": packing.rates,
                               "device": packing.device})


class GpuTimer:
    """Total training images/s of k processes training `run` at once on this process's GPU
    (CUDA_VISIBLE_DEVICES as Ray set it), each a fresh interpreter like a Ray trial's worker."""

    def __init__(self, run: dict, faces, seconds: float = 8.0, warmup_timeout_s: float = 300.0):
        self.run, self.faces, self.seconds, self.timeout = run, faces, seconds, warmup_timeout_s
        self.peak_mb: float | None = None  # k=1's peak reserved memory: larger k that cannot fit are skipped
        self.total_mb = torch.cuda.get_device_properties(0).total_memory / 2**20

    def rate(self, k: int) -> float | None:
        import multiprocessing as mp

        if self.peak_mb is not None and k * self.peak_mb > MEMORY_HEADROOM * self.total_mb:
            return None
        ctx = mp.get_context("spawn")
        start, results = ctx.Barrier(k), ctx.Queue()
        procs = [ctx.Process(target=_train_for, args=(self.run, self.faces, self.seconds, start, results))
                 for _ in range(k)]
        for p in procs:
            p.start()
        got = [results.get(timeout=self.timeout + self.seconds * 4) for _ in procs]
        for p in procs:
            p.join()
        if any("error" in g for g in got):
            if any(g.get("error") == "out of memory" for g in got):
                return None
            raise RuntimeError(next(g["error"] for g in got if "error" in g))
        if k == 1:
            self.peak_mb = got[0]["reserved_mb"]
        return sum(g["images_per_s"] for g in got)


def _train_for(run: dict, faces, seconds: float, start, results) -> None:
    """One of GpuTimer's processes: warm up (kernels, allocator), wait for the others, then
    train epochs of `faces` for `seconds`; put {images_per_s, reserved_mb} or {error}."""
    from fer.train import Trainer

    try:
        trainer = Trainer.from_run(run, faces, faces.subset(np.arange(min(8, len(faces)))))
        trainer.train_epoch()
        start.wait()
        t0, images = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            trainer.train_epoch()
            images += len(faces)
        torch.cuda.synchronize()
        results.put({"images_per_s": images / (time.perf_counter() - t0),
                     "reserved_mb": torch.cuda.max_memory_reserved() / 2**20})
    except torch.cuda.OutOfMemoryError:
        start.abort()
        results.put({"error": "out of memory"})
    except Exception as e:  # noqa: BLE001 (one line back to the measuring process)
        start.abort()
        results.put({"error": f"{e.__class__.__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"})


def packing_key(device_name: str, shape_key: str, batch_size: int, precision: str) -> str:
    return "|".join([device_name, torch.__version__, shape_key, f"b{batch_size}", precision])


def measure_gpu_packing(run: dict, faces, seconds: float = 8.0, cache: PackingCache | None = None) -> Packing:
    """The packing for `run` on this process's GPU (one trial per GPU where there is no CUDA
    device: Ray's logical GPUs, or a driver without the CUDA build of torch)."""
    if not torch.cuda.is_available():
        return Packing(1, {}, "no CUDA device")
    name = f"cuda:{torch.cuda.get_device_name(0)}"
    train = run["train"]
    key = packing_key(name, json.dumps(run["model"], sort_keys=True, default=str), int(train["batch_size"]),
                      str(train.get("precision", "auto")))
    return measure_packing(GpuTimer(run, faces, seconds), key=key, cache=cache, device=name)
