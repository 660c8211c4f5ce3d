"""The Tune trainable: a thin function over fer's training loop.

It gets the parsed dataset from the object store (tune.with_parameters), trains with
fer.Trainer, and reports every epoch with a fer checkpoint. A retried or resumed
trial continues from the checkpoint Tune hands back.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import ray
from ray import tune

from fer.checkpoint import load_checkpoint, save_checkpoint
from fer.config import resolve_run
from fer.data import FaceSet
from fer.models import count_params
from fer.run import split_for_training
from fer.train import Trainer


def train_fer(config: dict, faces: FaceSet) -> None:
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # not one "checkpoint created" line per epoch
    run = resolve_run({"model": config["model"], "train": config["train"]}, source="trial config")
    train, val, data = split_for_training(faces, run)
    trainer = Trainer(run, train, val)
    if (ckpt := tune.get_checkpoint()) is not None:
        with ckpt.as_directory() as d:
            trainer.restore(load_checkpoint(Path(d) / "checkpoint.pt"))
    context = ray.get_runtime_context()
    where = {"family": run["model"]["name"], "num_params": count_params(trainer.model)["trainable"],
             "node_id": context.get_node_id(), "gpu_ids": ",".join(map(str, context.get_accelerator_ids()["GPU"]))}
    for metrics in trainer.epochs():
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(trainer.checkpoint(data), Path(d) / "checkpoint.pt")
            tune.report({**metrics, **where}, checkpoint=tune.Checkpoint.from_directory(d))
