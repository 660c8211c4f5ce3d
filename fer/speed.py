"""Precision and memory layout chosen by measurement, not by assumption.

bf16 autocast trains a CNN 3x faster than fp32 on a CPU with AMX or AVX512-BF16, and 10-17x
slower on one that emulates bf16 (AVX2 only: most laptops, Zen 2/3 servers, many cloud VMs);
channels_last helps convolutions on some CPUs and not on others. So `precision: auto` and
`channels_last: auto` time a few training steps of the model itself under each candidate and
keep the fastest. The result is cached per device, thread count and model shape (a JSON file
under FER_CACHE_DIR), so the trials of a sweep and a second run on the same machine reuse it.
On CUDA, precision follows a rule (bf16 where the GPU supports it); the layout is measured.
"""
from __future__ import annotations

import copy
import hashlib
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.nn.parameter import UninitializedParameter

from fer.atomic import JsonEntries
from fer.data.cache import default_cache_dir

BF16_MARGIN = 1.1  # bf16 must be this much faster to be chosen: fp32 is exact and the baseline
LAYOUT_MARGIN = 1.05  # channels_last likewise against the default layout
RECHECK = 1.3  # candidates within this factor of the best are timed a second time
CACHE_FILE = "speed.json"


class Speed(NamedTuple):
    """What a run trains at, and what it measured to decide."""

    precision: str  # "fp32" or "bf16"
    channels_last: bool
    images_per_s: float  # training rate of the chosen setting (0.0: nothing was measured)
    rates: dict  # setting label ("bf16, channels_last") -> measured training images/s
    how: str  # "measured", "cached", "given" (nothing to choose), "rule" (CUDA precision)
    warning: str = ""  # set when an explicit bf16 is slower than fp32 here

    @property
    def label(self) -> str:
        return label(self.precision, self.channels_last)

    def describe(self) -> str:
        """`fp32, channels_last at 190 images/s (measured; bf16, channels_last 13 images/s)`"""
        others = "; ".join(f"{k} {v:.0f} images/s" for k, v in self.rates.items() if k != self.label)
        rate = f" at {self.images_per_s:.0f} images/s" if self.images_per_s else ""
        return f"{self.label}{rate} ({self.how}{'; ' + others if others else ''})"

    @classmethod
    def from_record(cls, record) -> Speed | None:
        """A Speed from `record()`'s plain values; None for anything else (another version's)."""
        try:
            return cls(**record) if isinstance(record, dict) else None
        except TypeError:
            return None

    def record(self) -> dict:
        """Plain values for checkpoints and trial results."""
        return {"precision": self.precision, "channels_last": self.channels_last,
                "images_per_s": self.images_per_s, "rates": dict(self.rates), "how": self.how,
                "warning": self.warning}


def label(precision: str, channels_last: bool) -> str:
    return f"{precision}, {'channels_last' if channels_last else 'contiguous'}"


def device_name(device: torch.device) -> str:
    """The hardware a measurement holds for: the GPU's name, or the CPU's model, its ISA as torch
    sees it (ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA change what runs) and the thread count."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    return (f"cpu:{cpu_model()}:{torch.backends.cpu.get_cpu_capability()}{':' + isa if isa else ''}"
            f":{torch.get_num_threads()}t")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_bf16_flag() -> str:
    """`amx_bf16` or `avx512_bf16` when the CPU runs bf16 natively, else "" (Linux only)."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return ""
    return next((f for f in ("amx_bf16", "avx512_bf16") if f in flags), "")


class StepTimer:
    """Times training steps (forward, loss, backward) of a copy of the model: the copy keeps the
    real model's weights, batch-norm statistics and random state untouched."""

    MAX_STEPS = 20

    def __init__(self, model: torch.nn.Module, device: torch.device, batch_size: int, crop_size: int,
                 steps: int = 2, min_s: float = 0.2, clock: Callable[[], float] = time.perf_counter):
        self.model = copy.deepcopy(model).train()
        self.device, self.steps, self.min_s, self.clock = device, steps, min_s, clock
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(batch_size, 1, crop_size, crop_size, generator=gen).to(device)
        self.y = torch.randint(0, 7, (batch_size,), generator=gen).to(device)

    def rate(self, precision: str, channels_last: bool, give_up_s: float = float("inf")) -> float:
        """Training images/s: one warm-up step, then the median of `steps` timed ones. A setting
        whose warm-up step already takes `give_up_s` stops there (emulated bf16 costs seconds)."""
        model = self.model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        x = self.x.contiguous(memory_format=torch.channels_last) if channels_last else self.x.contiguous()
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            return self._rate(model, x, precision, give_up_s)  # dropout draws leave the run's RNG as it was

    def _rate(self, model: torch.nn.Module, x: torch.Tensor, precision: str, give_up_s: float) -> float:
        times: list[float] = []  # warm-up first; small models take more steps, so noise averages out
        while len(times) <= self.steps or (sum(times[1:]) < self.min_s and len(times) <= self.MAX_STEPS):
            t0 = self.clock()
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = model(x)
            F.cross_entropy(logits.float(), self.y).backward()
            model.zero_grad(set_to_none=True)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            times.append(max(self.clock() - t0, 1e-9))
            if len(times) == 1 and times[0] >= give_up_s:
                return len(self.x) / times[0]
        return len(self.x) / statistics.median(times[1:])


def has_convs(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def choose(model: torch.nn.Module, device: torch.device, batch_size: int, crop_size: int, precision: str = "auto",
           channels_last: bool | str = "auto", shape_key: str = "", timer: StepTimer | None = None,
           cache: SpeedCache | None = None) -> Speed:
    """The setting a run trains at. `shape_key` names the model's shape for the cache (default:
    model_shape); `timer` and `cache` are for tests (a fake clock, a temporary folder)."""
    device = torch.device(device)
    layouts = [False, True] if channels_last == "auto" and has_convs(model) else [channels_last is True]
    if device.type == "cuda" and precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    measure_bf16 = precision == "auto" or (precision == "bf16" and device.type == "cpu")
    if len(layouts) == 1 and not measure_bf16:
        return Speed(precision, layouts[0], 0.0, {}, "given")
    cache = cache or SpeedCache()
    key = "|".join([device_name(device), torch.__version__, shape_key or model_shape(model),
                    f"b{batch_size}x{crop_size}", f"{precision}/{channels_last}"])
    if (hit := cache.get(key)) is not None:
        return hit._replace(how="cached")
    with cache.entries.one_at_a_time(key):  # trials of one shape starting together: one measures
        if (hit := cache.get(key)) is not None:
            return hit._replace(how="cached")
        timer = timer or StepTimer(model, device, batch_size, crop_size)
        speed = _measure(timer, precision if precision != "auto" else None, layouts, device)
        cache.put(key, speed)
    return speed


def model_shape(model: torch.nn.Module) -> str:
    """What a model's training speed depends on, as a cache key: each module's type and each
    parameter's shape. Regularisation values (dropout rates, sampled per trial) leave it alone, so
    a sweep's trials of one architecture share one measurement."""
    parts = [f"{name}:{type(m).__name__}" for name, m in model.named_modules()]
    parts += [f"{name}{'(lazy)' if isinstance(p, UninitializedParameter) else tuple(p.shape)}"
              for name, p in model.named_parameters()]
    return f"{type(model).__name__}:{hashlib.sha1('|'.join(parts).encode()).hexdigest()[:16]}"


def _measure(timer: StepTimer, precision: str | None, layouts: list[bool], device: torch.device) -> Speed:
    """Every candidate once (fp32 contiguous first, the baseline), then those within RECHECK of the
    best a second time, keeping each one's faster figure: one pass alone let a noisy step swap
    two layouts 30% apart. `precision` None: choose between fp32 and bf16 (CPU); the precision
    CUDA's rule gave; or "bf16" asked for on a CPU, where fp32 is timed too, to warn."""
    precisions = ["fp32", "bf16"] if precision is None or (precision == "bf16" and device.type == "cpu") \
        else [precision]
    candidates = [(p, cl) for p in precisions for cl in layouts]
    batch = timer.x.shape[0]
    found: dict[tuple[str, bool], float] = {}
    hopeless: set[str] = set()
    for c in candidates:  # a setting whose warm-up is 3x the best step gives up: emulated bf16 costs seconds
        best = max(found.values(), default=0.0)
        if c[0] in hopeless:  # its precision's other layout was 3x slower than the best: not worth a warm-up
            continue
        found[c] = timer.rate(*c, give_up_s=3 * batch / best if best else float("inf"))
        if best and found[c] * 3 <= best:
            hopeless.add(c[0])
    best = max(found.values())
    for c in list(found):
        if found[c] * RECHECK >= best:
            found[c] = max(found[c], timer.rate(*c))
    chosen = precision or _faster(found, "bf16", "fp32", layouts, BF16_MARGIN)
    if len(layouts) > 1:
        layout = found.get((chosen, True), 0.0) > LAYOUT_MARGIN * found.get((chosen, False), 0.0)
    else:
        layout = layouts[0]
    rates = {label(*c): r for c, r in found.items()}
    return Speed(chosen, layout, found[(chosen, layout)], rates, "measured", _warning(found, precision, device))


def _faster(found: dict, challenger: str, baseline: str, layouts: list[bool], margin: float) -> str:
    """The challenger precision if its best layout beats the baseline's best by `margin`."""
    best = {p: max(found.get((p, cl), 0.0) for cl in layouts) for p in (challenger, baseline)}
    return challenger if best[challenger] > margin * best[baseline] else baseline


def _warning(found: dict, precision: str | None, device: torch.device) -> str:
    """For an explicit bf16 on a CPU where fp32 trains faster: by how much, and why."""
    if precision != "bf16" or device.type != "cpu":
        return ""
    fp32 = max((r for (p, _), r in found.items() if p == "fp32"), default=0.0)
    bf16 = max((r for (p, _), r in found.items() if p == "bf16"), default=0.0)
    if bf16 >= fp32:
        return ""
    flag = cpu_bf16_flag()
    why = (f"{flag}, yet slower for this model: autocast's casts cost more than they save" if flag else
           f"{torch.backends.cpu.get_cpu_capability()}, no AMX or AVX512-BF16: bf16 is emulated")
    return (f"train.precision: bf16 runs {fp32 / bf16:.1f}x slower than fp32 on this CPU ({why}); "
            f"precision: auto would run fp32 at {fp32:.0f} images/s against {bf16:.0f}")


class SpeedCache:
    """Measured settings by key, in one JSON file under FER_CACHE_DIR (fer.atomic.JsonEntries)."""

    def __init__(self, root: str | Path | None = None):
        self.entries = JsonEntries(Path(root or default_cache_dir()) / CACHE_FILE)
        self.path = self.entries.path

    def get(self, key: str) -> Speed | None:
        return Speed.from_record(self.entries.read().get(key))  # None for another version's entry: measure again

    def put(self, key: str, speed: Speed) -> None:
        self.entries.put(key, speed.record())
