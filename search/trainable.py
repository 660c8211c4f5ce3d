"""The Tune trainable: a thin function over fer's training loop.

It gets the parsed dataset from the object store (tune.with_parameters), trains with
fer.Trainer, and reports every epoch with a fer checkpoint. A retried or resumed
trial continues from the checkpoint Tune hands back. Under a sweep time budget the
trial's own time budget ends at the sweep's deadline, so it stops and anneals in time.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import ray
import torch
from ray import tune

from fer.checkpoint import Checkpoint
from fer.config import resolve_run
from fer.data import FaceSet, split_for_training
from fer.models import count_params
from fer.speed import Speed
from fer.train import Trainer
from search.budget import trial_seconds, trial_seconds_now
from search.live import HEARTBEAT_FILE, Heartbeat
from search.uri import trial_folder


def train_fer(config: dict, faces: FaceSet, deadline: float | None = None, report=None,
              progress_to: str | None = None) -> None:
    """One trial. `report(metrics, checkpoint=...)` is tune.report unless given (tests wrap it);
    `progress_to`, the experiment folder on a local or shared disk, gets the trial's heartbeat."""
    report = report or tune.report
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # not one "checkpoint created" line per epoch
    run = resolve_run({"model": config["model"], "train": config["train"]}, source="trial config")
    held = None
    if (kept := tune.get_checkpoint()) is not None:
        with kept.as_directory() as d:
            held = Checkpoint.load(Path(d) / "checkpoint.pt")
    own = run["train"]["time_budget_s"]
    if deadline:  # (a resumed trial has used some of its time: its history's last elapsed_s)
        used = held.elapsed_s if held is not None else 0.0
        run["train"]["time_budget_s"] = trial_seconds(own, deadline, used)
    if held is not None:  # a retried or grown trial keeps the precision and layout it started with
        for key in ("precision", "channels_last"):
            run["train"][key] = held.train_config.get(key, run["train"][key])
    threads = _use_trial_cpus()
    train, val, data = split_for_training(faces, run["train"])
    trainer = Trainer.from_run(run, train, val)
    if deadline:  # the deadline decides each "another epoch?" from what is left of it then
        trainer.clock.refresh = lambda used_s: trial_seconds_now(own, deadline, used_s)
    if held is not None:
        trainer.restore(held)
        trainer.speed = Speed.from_record(held.speed) or trainer.speed  # as measured when it started
    speed = trainer.speed
    heartbeat = None
    if progress_to:
        folder = Path(progress_to) / trial_folder(tune.get_context().get_trial_id())
        heartbeat = trainer.on_batch = Heartbeat(folder / HEARTBEAT_FILE, speed.record(), trainer.cfg.batch_size)
        heartbeat.start_epoch(trainer.epoch + 1)
    context = ray.get_runtime_context()
    where = {"family": run["model"]["name"], "num_params": count_params(trainer.model)["trainable"],
             "threads": threads, "node_id": context.get_node_id(),
             "gpu_ids": ",".join(map(str, context.get_accelerator_ids()["GPU"])),
             "precision": speed.precision, "channels_last": speed.channels_last, "speed": speed.describe(),
             "speed_warning": speed.warning}
    for metrics in trainer.epochs():
        if metrics["run_ends"] == "divergence":  # its NaN weights are never a checkpoint
            report({**metrics, **where})
            break
        with tempfile.TemporaryDirectory() as d:
            trainer.checkpoint(data).save(Path(d) / "checkpoint.pt")
            report({**metrics, **where}, checkpoint=tune.Checkpoint.from_directory(d))
        if heartbeat is not None:
            heartbeat.start_epoch(trainer.epoch + 1)


def _use_trial_cpus() -> int:
    """torch's CPU threads = the CPUs Tune gives the trial now (more once the sweep's
    scheduler hands it CPUs freed by stopped trials; the trial then restarts with them)."""
    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    return torch.get_num_threads()
