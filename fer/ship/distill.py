"""Distillation: go on training a chosen checkpoint (the student) against a teacher's probabilities
as well as the labels (Hinton et al. 2015), for a set time, so that what an ensemble knows ends in
one model that costs one model's latency.

The teacher is any fer checkpoint, an ensemble from `search ensemble` most usefully. It is scored
once on the student's training rows, with its own preprocessing and TTA, before the first epoch;
that pass is timed and taken out of the time budget, so `time_budget_s` bounds the whole
distillation. The student starts from its checkpoint's weights, at `lr_scale` of its learning rate
on a fresh schedule, and keeps its best epoch by the split it was selected on, like any run; the
checkpoint records the teacher and the student's score before it started, so a user sees at once
whether distillation bought anything. With weight 0 the same command is a plain fine-tune, the
control that says how much of a gain is the teacher's and how much the extra epochs'.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fer.errors import CheckpointError, ConfigError, FerError
from fer.fields import Limit, option

if TYPE_CHECKING:  # torch: imported by the functions that need it, so that `search --help` stays quick
    from fer.checkpoint import Checkpoint
    from fer.data import FaceSet


@dataclass(frozen=True)
class DistillSettings:
    """How the student trains against its teacher; each field is a `search distill` option."""

    weight: float = option("weight of the teacher's probabilities in the loss, the labels' the rest (0: a plain "
                           "fine-tune, the control)", 0.5, limit=Limit("in [0, 1]", lambda v: 0 <= v <= 1))
    temperature: float = option("temperature both the teacher's and the student's logits are divided by",
                                2.0, limit=Limit("> 0", lambda v: v > 0))
    lr_scale: float = option("the student's peak learning rate as a share of the one it was trained at",
                             0.1, limit=Limit("in (0, 1]", lambda v: 0 < v <= 1))
    epochs: int = option("epochs at most (the time budget may end it sooner; cosine anneals over whichever ends "
                         "first)", 10,
                         limit=Limit("a positive integer", lambda v: v >= 1))
    time_budget_s: float = option("seconds for the whole distillation, the teacher's pass included (0: none)",
                                  0.0, limit=Limit(">= 0", lambda v: v >= 0))


def check_pair(student: Checkpoint, teacher: Checkpoint, teacher_path: str) -> None:
    """A teacher that has seen the student's selection split (a refit), or was trained on other
    data, would leak that split into the student's scores: refused, naming the file."""
    if student.trained_on:
        raise CheckpointError("the student is a refit: distil the run it came from")
    if teacher.trained_on:
        raise CheckpointError(f"{teacher_path}: a refit, trained on {' and '.join(teacher.trained_on)}: its "
                              f"probabilities would carry the split the student is selected on")
    if teacher.source != student.source:
        raise CheckpointError(f"{teacher_path}: trained on {teacher.source}, the student on {student.source}: "
                              "a teacher from other data may have seen the student's selection split")


def distill_config(student: Checkpoint, s: DistillSettings, budget_left_s: float) -> dict:
    """The student's own run config, restarted: a fraction of its learning rate on a fresh
    schedule, the distillation weight and temperature, the time left after the teacher's pass."""
    from fer.config import resolve_run

    train = dict(student.train_config)
    train.update(lr=train["lr"] * s.lr_scale, distill=s.weight, distill_temperature=s.temperature,
                 early_stopping=0, time_budget_s=budget_left_s, epochs=s.epochs)
    return resolve_run({"model": dict(student.spec), "train": train}, source="distill")


def distill(student: Checkpoint, teacher: Checkpoint | None, faces: FaceSet, out: str | Path, s: DistillSettings,
            on_epoch=None, on_teacher=None) -> Checkpoint:
    """Train the student against the teacher (check_pair'd by the caller; None with weight 0) and
    write out/checkpoint.pt (its best epoch); returns it. `on_teacher(seconds)` is told how long
    the teacher's pass took."""
    from fer.data.splits import split_for_training
    from fer.evaluate import predict_checkpoint
    from fer.train import Trainer, pick_device

    t0 = time.perf_counter()
    train, val, data = split_for_training(faces, student.train_config)
    device = pick_device(student.train_config.get("device", "auto"))
    probs = predict_checkpoint(teacher, train.images, device) if s.weight else None  # (N, 7): its own TTA
    teacher_s = time.perf_counter() - t0
    if on_teacher:
        on_teacher(teacher_s)
    left = s.time_budget_s - teacher_s if s.time_budget_s else 0.0
    if s.time_budget_s and left <= 0:
        raise ConfigError(f"--time-budget-s {s.time_budget_s:g}: the teacher's pass alone took {teacher_s:.0f} s")
    trainer = Trainer.from_run(distill_config(student, s, left), train, val)
    trainer.model.load_state_dict(student.state_dict)
    if probs is not None:
        trainer.teach(probs)
    trainer.fit(on_epoch)
    if trainer.best["state"] is None:  # the first epoch diverged: the student as it was is still the better
        raise FerError(f"training diverged in epoch {trainer.epoch}: nothing written to {out}; a lower "
                       "--lr-scale usually helps")
    trainer.use_best_weights()
    data.update(distilled_from={"teacher": str(teacher.path) if s.weight else None, "teacher_s": teacher_s,
                                "student_metrics": student.metrics, "student_best_epoch": student.best_epoch})
    new = trainer.checkpoint(data, metrics=trainer.history[trainer.best["epoch"] - 1])
    new.save(Path(out) / "checkpoint.pt")
    return new
