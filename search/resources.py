"""How many trials the Ray cluster runs at once, and whether a trial fits at all.

Asked of the nodes alive now (`ray.nodes()`): a trial is one process on one node, so it
needs one node with its CPUs and GPUs, and the cluster holds the sum over nodes of what
each node holds. An autoscaling cluster may grow later; the figure is for the nodes there.
"""
from __future__ import annotations

import math

import ray

from fer.errors import ConfigError


def node_resources() -> list[dict]:
    return [n["Resources"] for n in ray.nodes() if n["Alive"]]


def trials_at_once(cpus: float, gpus: float, nodes: list[dict] | None = None) -> int:
    """Trials of `cpus` CPUs and `gpus` GPUs the nodes run at the same time."""
    nodes = node_resources() if nodes is None else nodes

    def fits(have: float, need: float) -> float:
        return math.floor(have / need + 1e-9) if need else math.inf

    return sum(int(min(fits(n.get("CPU", 0), cpus), fits(n.get("GPU", 0), gpus))) for n in nodes)


def describe(nodes: list[dict]) -> str:
    cpus, gpus = sum(n.get("CPU", 0) for n in nodes), sum(n.get("GPU", 0) for n in nodes)
    return (f"{len(nodes)} node{'s' * (len(nodes) != 1)}, {cpus:g} CPU{'s' * (cpus != 1)}"
            + (f", {gpus:g} GPU{'s' * (gpus != 1)}" if gpus else ""))


def concurrency(cpus: float, gpus: float, cap: int | None) -> tuple[int, str]:
    """(trials at a time, why): what the cluster holds, capped by the space or --max-concurrent.
    A trial no node can hold is a ConfigError: Tune would wait for it for ever."""
    nodes = node_resources()
    room = trials_at_once(cpus, gpus, nodes)
    need = f"{cpus:g} CPU{'s' * (cpus != 1)}" + (f" + {gpus:g} GPU{'s' * (gpus != 1)}" if gpus else "")
    if room == 0:
        raise ConfigError(f"no node of the Ray cluster ({describe(nodes)}) can hold a trial of {need}: "
                          "lower --cpus-per-trial or --gpus-per-trial")
    why = f"the cluster ({describe(nodes)}) holds {room} trial{'s' * (room != 1)} of {need}"
    if cap is not None and cap < room:
        return cap, f"{why}; max_concurrent caps it at {cap}"
    return room, why


def cluster_total(unit: str = "CPU") -> float:
    """CPUs (or GPUs) of the live nodes: what a sweep's budget is spent on."""
    return float(sum(n.get(unit, 0) for n in node_resources()))


MEASURE_IMAGES = 4096  # training faces each measuring process trains on: epochs of a second or so on a GPU


def settle_packing(space, faces) -> str:
    """Resolve `gpus_per_trial: auto`: fer.packing measures trials per GPU for the sweep's first
    trial config in a Ray task holding one whole GPU (so on a GPU node, where the trials will
    run), and cpus_per_trial becomes that node kind's CPUs per GPU shared by those trials.
    Returns the line saying what was measured and chosen ("" when nothing was asked)."""
    import dataclasses

    import numpy as np

    from fer.config import resolve_run
    from fer.data import split_for_training
    from fer.packing import measure_gpu_packing
    from search.plan import calibration_config

    s = space.settings
    if s.gpus_per_trial != "auto":
        return ""
    gpu_nodes = [n for n in node_resources() if n.get("GPU", 0) >= 1]
    if not gpu_nodes:
        raise ConfigError(f"{space.source}: settings.gpus_per_trial: auto needs a node with a GPU, and the Ray "
                          f"cluster ({describe(node_resources())}) has none: set gpus_per_trial: 0 to train on CPUs")
    run = resolve_run(calibration_config(space), source=f"{space.source}: first trial")
    train, _, _ = split_for_training(faces, run["train"])
    sample = train.subset(np.arange(min(MEASURE_IMAGES, len(train))))
    measure = ray.remote(num_gpus=1, num_cpus=1)(measure_gpu_packing)
    packing = ray.get(measure.remote(run, sample))
    k = packing.trials_per_gpu
    cpus_per_gpu = min(n.get("CPU", 0) / n["GPU"] for n in gpu_nodes)
    cpus = max(1, math.floor(cpus_per_gpu / k))
    space.settings = dataclasses.replace(s, gpus_per_trial=packing.gpus_per_trial, cpus_per_trial=float(cpus))
    return (f"gpus_per_trial auto: {packing.describe()}; {packing.gpus_per_trial:g} GPU and {cpus} CPU"
            f"{'s' * (cpus != 1)} per trial (the GPU nodes have {cpus_per_gpu:g} CPUs per GPU)")
