"""The one training loop: every caller (CLI, search trials, benchmarks) goes through it.

The dataset lives on the training device as uint8 and batches are sliced, normalised
and augmented there, so there are no DataLoader workers to feed. Each epoch yields a
metrics dict (the per-epoch callback's argument); `Trainer.checkpoint()` packages the
state at any point.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from fer import optim
from fer.average import BN_IMAGES, WeightAverage
from fer.calibration import balancing_tau, fit_temperature, prior_correction
from fer.checkpoint import Checkpoint, Preprocessing, preprocessing
from fer.classifier import Classifier
from fer.clock import RunClock
from fer.config import TrainConfig, plain, train_config
from fer.data import CLASSES, FaceSet
from fer.errors import ConfigError
from fer.evaluate import autocast_for, classification_metrics, probabilities, view_logits
from fer.models import model_from_spec
from fer.speed import Speed
from fer.speed import choose as choose_speed
from fer.transforms import augment, centre_crop, mixup, normalize

DIVERGED = {"val_loss": math.nan, "val_acc": math.nan, "val_macro_f1": math.nan, "val_ece": math.nan}  # loss NaN


def batches_of(order: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, ...]:
    """`order` in batches of batch_size; a last batch of one joins the one before, since
    BatchNorm cannot train on a single image (its variance is undefined)."""
    batches = order.split(batch_size)
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches = (*batches[:-2], torch.cat(batches[-2:]))
    return batches


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def training_speed(model: torch.nn.Module, cfg: TrainConfig, n_train: int) -> Speed:
    """The precision and layout a run of `cfg` trains `model` (on its device) at, as Trainer
    chooses them (fer.speed). A sweep's plan asks the same before its trials start, without
    building a trainer (its model copy, data and optimizer state)."""
    device = next(model.parameters()).device
    return choose_speed(model, device, min(cfg.batch_size, n_train), cfg.crop_size, cfg.precision, cfg.channels_last)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


class Trainer:
    """Trains the model a resolved spec describes ({"name", **fields}: fer.models) as `cfg` says,
    on (train, val) face sets. `from_run` builds one from a resolved run config (fer.config)."""

    def __init__(self, model: dict, cfg: TrainConfig, train: FaceSet, val: FaceSet):
        seed_everything(cfg.seed)
        self.model_spec = model
        self.device = pick_device(cfg.device)
        self.model = model_from_spec(model).to(self.device)
        self.speed = training_speed(self.model, cfg, len(train))
        # the checkpoint's train_config says what the run trained at, never "auto"
        self.cfg = cfg = replace(cfg, precision=self.speed.precision, channels_last=self.speed.channels_last)
        self.on_batch: Callable[[int, int], None] | None = None  # (batches done, batches per epoch): progress
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.x = torch.as_tensor(train.images).unsqueeze(1).to(self.device)  # (N, 1, 48, 48) uint8
        self.y = torch.as_tensor(train.require_labels()).to(self.device)
        self.val_images, self.val_labels = val.images, val.require_labels()
        pixels = train.images.astype(np.float32) / 255.0
        counts = np.bincount(train.labels, minlength=len(CLASSES)).astype(np.float64)
        self.prep = preprocessing(pixels.mean(), pixels.std() + 1e-6, cfg.crop_size,
                                  np.maximum(counts, 1) / max(counts.sum(), 1), cfg.logit_adjust)
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.class_weights = torch.tensor(len(train) / (len(CLASSES) * np.maximum(counts, 1)),
                                          dtype=torch.float32, device=self.device)
        self.steps_per_epoch = len(batches_of(torch.empty(len(train)), cfg.batch_size))
        self.epoch, self.history = 0, []
        self.clock = RunClock(cfg.time_budget_s)  # seconds in epochs: the budget, the schedule, the progress
        self.optimizer = optim.optimizer_for(self.model, cfg)
        self.scheduler = optim.scheduler_for(self.optimizer, cfg, self.steps_per_epoch, self.progress)
        self.best = {"value": -math.inf, "epoch": 0, "state": None}
        self.average = WeightAverage(self.model, cfg.ema) if cfg.ema else None
        self.kept = self.model  # the weights the last validation kept: the model's own or their average
        self.soft_targets: torch.Tensor | None = None  # (N, 7) softened teacher probabilities (teach)

    @classmethod
    def from_run(cls, run: dict, train: FaceSet, val: FaceSet) -> Trainer:
        return cls(run["model"], train_config(run), train, val)

    @property
    def run(self) -> dict:
        """The run as it trains: {model, train}, the precision and layout chosen, never "auto"."""
        return {"model": self.model_spec, "train": plain(self.cfg)}

    def teach(self, probs: np.ndarray) -> None:
        """A teacher's probabilities for the training images, (N, 7) in their order: with
        `distill` > 0, each batch's loss adds its KL divergence from them (distillation_loss)."""
        if probs.shape != (len(self.y), len(CLASSES)):
            raise ValueError(f"teacher probabilities of shape {probs.shape}, expected {(len(self.y), len(CLASSES))}")
        probs = torch.as_tensor(probs, dtype=torch.float32)
        self.soft_targets = soften(probs, self.cfg.distill_temperature).to(self.device)

    # -- the loop --------------------------------------------------------------------------
    def epochs(self) -> Iterator[dict]:
        """Run the remaining epochs, yielding each one's metrics. With a time budget, an epoch
        starts only if the last one's duration says it will end inside the budget. Each epoch's
        `run_ends` says whether it is the last and why ("epochs", "time budget", "early
        stopping"; "" when another follows), so a caller can tell its run's own end from a stop."""
        if self.cfg.distill and self.soft_targets is None:
            raise ConfigError("train.distill needs a teacher's probabilities: `search distill` supplies them "
                              "(set train.distill: 0 to train on the labels alone)")
        stale = 0
        while self.epoch < self.cfg.epochs:
            metrics = self.train_epoch()  # (starts the clock's epoch)
            diverged = not math.isfinite(metrics["train_loss"])  # NaN or inf weights: nothing to validate
            metrics.update(DIVERGED if diverged else self.validate())
            last = self.clock.end_epoch()
            self.epoch += 1
            # epoch_wall_s: training + validation; elapsed_s: the run's training time so far (RunClock)
            metrics.update(epoch=self.epoch, epoch_wall_s=last, **self.clock.state_dict())
            if diverged:  # the run ends here, its best epoch the last good one
                self.history.append({**metrics, "run_ends": "divergence"})
                yield self.history[-1]
                break
            if self.cfg.schedule == "plateau":
                self.scheduler.step(metrics[self.cfg.monitor])
            value = metrics[self.cfg.monitor]
            if value > self.best["value"]:
                self.best = {"value": value, "epoch": self.epoch, "state": copy.deepcopy(self.kept.state_dict()),
                             "logit_adjust": self.prep.logit_adjust, "temperature": self.prep.temperature}
                stale = 0
            else:
                stale += 1
            cfg = self.cfg
            metrics["run_ends"] = ("epochs" if self.epoch >= cfg.epochs else
                                   "time budget" if not self.clock.another_fits(last) else
                                   "early stopping" if cfg.early_stopping and stale >= cfg.early_stopping else "")
            self.history.append(metrics)
            yield metrics
            if metrics["run_ends"]:
                break

    def progress(self, step: int) -> float:
        """Share of the run done, in [0, 1]: of its steps, or of its time budget if that runs out first."""
        return min(max(step / (self.cfg.epochs * self.steps_per_epoch), self.clock.share()), 1.0)

    def fit(self, callback: Callable[[dict], None] | None = None) -> list[dict]:
        for metrics in self.epochs():
            if callback:
                callback(metrics)
        return self.history

    def _batches(self) -> Iterator[torch.Tensor]:
        n = len(self.y)
        if self.cfg.class_balance == "sampler":
            weights = self.class_weights[self.y]
            order = torch.multinomial(weights, n, replacement=True, generator=self.gen)
        else:
            order = torch.randperm(n, generator=self.gen, device=self.device)
        return batches_of(order, self.cfg.batch_size)

    def train_epoch(self) -> dict:
        """One pass over the training set; public so benchmarks can time it alone."""
        cfg, model = self.cfg, self.model
        model.train()
        self.clock.start_epoch()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        batches = self._batches()
        for i, idx in enumerate(batches):
            x = augment(normalize(self.x[idx], self.prep), cfg, self.gen)
            if cfg.mixup:
                x, perm, lam = mixup(x, cfg.mixup, self.gen)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.y[idx]
            with autocast_for(self.device, cfg.precision):
                logits = model(x).float()  # (B, 7); the loss in fp32 whatever the precision
            loss = self._loss(logits, idx)
            if cfg.mixup:  # the shuffled copy's labels (and teacher) at its share of the blend
                loss = lam * loss + (1 - lam) * self._loss(logits, idx[perm])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.average is not None:
                self.average.update(model)
            if cfg.schedule in ("cosine", "onecycle", "step"):
                self.scheduler.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == y).sum()
            if self.on_batch is not None:
                self.on_batch(i + 1, len(batches))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = max(self.clock.in_epoch(), 1e-9)  # training only; the epoch's wall time adds validation
        n = len(self.y)
        return {"train_loss": loss_sum.item() / n, "train_acc": correct.item() / n,
                "lr": self.optimizer.param_groups[0]["lr"], "epoch_s": seconds, "images_per_s": n / seconds}

    def _loss(self, logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The batch's loss against the labels (and the teacher) of the training images `idx`."""
        cfg = self.cfg
        weight = self.class_weights if cfg.class_balance == "loss" else None
        loss = F.cross_entropy(logits, self.y[idx], weight=weight, label_smoothing=cfg.label_smoothing)
        if self.soft_targets is not None and cfg.distill:
            loss = (1 - cfg.distill) * loss + cfg.distill * distillation_loss(
                logits, self.soft_targets[idx], cfg.distill_temperature)
        return loss

    def validate(self) -> dict:
        """Scores on the validation set. With `ema`, the weights' average is scored too (its batch
        norms recomputed first) and the better of the two becomes this epoch's weights; both scores
        are kept (val_acc_raw, val_acc_ema), so a run says what the average bought."""
        metrics, self.prep = self._score(self.model)
        self.kept = self.model
        if self.average is None:
            return metrics
        self.average.recompute_batch_norm(self._norm_batches())
        averaged, prep = self._score(self.average.model)
        both = {f"{k}_{who}": m[k] for who, m in (("raw", metrics), ("ema", averaged))
                for k in ("val_acc", "val_macro_f1")}
        if averaged[self.cfg.monitor] > metrics[self.cfg.monitor]:
            metrics, self.prep, self.kept = averaged, prep, self.average.model
        return {**metrics, **both, "ema_kept": float(self.kept is not self.model)}

    def _score(self, model: torch.nn.Module) -> tuple[dict, Preprocessing]:
        """(metrics, preprocessing) of `model` on the validation set: tau chosen first when
        balance_within is set, then (with calibrate) the temperature fitted there, so every
        checkpoint carries its own (fer.calibration)."""
        prep, cfg = self.prep, self.cfg
        logits = view_logits(Classifier.of(model, prep, cfg.tta), self.val_images, cfg.eval_batch_size,
                             self.device, cfg.precision)  # (V, N, 7)
        if cfg.balance_within:
            raw = probabilities(logits, replace(prep, logit_adjust=0.0, temperature=1.0))
            prep = replace(prep, logit_adjust=balancing_tau(self.val_labels, raw, prep.class_prior, cfg.balance_within))
        if cfg.calibrate:
            factor = prior_correction(prep) if prep.logit_adjust else None
            prep = replace(prep, temperature=fit_temperature(logits, self.val_labels, factor))
        m = classification_metrics(self.val_labels, probabilities(logits, prep))
        return {"val_loss": m["loss"], "val_acc": m["accuracy"], "val_macro_f1": m["macro_f1"], "val_ece": m["ece"],
                "logit_adjust": prep.logit_adjust, "temperature": prep.temperature}, prep

    def _norm_batches(self) -> Iterator[torch.Tensor]:
        """The average's batch-norm inputs: BN_IMAGES training images (the same ones every epoch,
        drawn without touching the run's generator), centre-cropped as evaluation sees them."""
        pick = torch.randperm(len(self.y), generator=torch.Generator().manual_seed(self.cfg.seed))[:BN_IMAGES]
        for idx in batches_of(pick.to(self.device), self.cfg.batch_size):
            x = centre_crop(normalize(self.x[idx], self.prep), self.cfg.crop_size)
            with autocast_for(self.device, self.cfg.precision):
                yield x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    # -- state ---------------------------------------------------------------------------
    def use_best_weights(self) -> None:
        if self.best["state"] is not None:
            self.model.load_state_dict(self.best["state"])
            self.kept = self.model
            self.prep = replace(self.prep, logit_adjust=self.best["logit_adjust"],
                                temperature=self.best["temperature"])

    def checkpoint(self, data: dict | None = None, metrics: dict | None = None) -> Checkpoint:
        """The weights the last validation kept (the model's, or with `ema` their average) as a
        checkpoint; `metrics` defaults to the last epoch's. Its resume state continues the training
        of the model's own weights."""
        resume = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                  "generator": self.gen.get_state().cpu()}
        if self.average is not None:
            resume.update(model=self.model.state_dict(), average=self.average.state_dict())
        return Checkpoint.build(
            self.model_spec, self.kept.state_dict(), self.prep, plain(self.cfg), history=self.history,
            metrics=self.history[-1] if metrics is None and self.history else metrics, best_epoch=self.best["epoch"],
            data=data, speed=self.speed.record(), resume=resume)

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from a checkpoint written by `checkpoint()` (weights, optimiser, epoch)."""
        resume = ckpt.resume
        self.model.load_state_dict(resume.get("model", ckpt.state_dict))
        if self.average is not None and "average" in resume:
            self.average.load_state_dict(resume["average"])
        self.prep = replace(self.prep, logit_adjust=ckpt.logit_adjust, temperature=ckpt.temperature)
        if "optimizer" in resume:
            self.optimizer.load_state_dict(resume["optimizer"])
            self.scheduler.load_state_dict(resume["scheduler"])
            self.gen.set_state(resume["generator"].to(self.gen.get_state().device))
        self.history = ckpt.history
        self.epoch = len(self.history)
        self.clock.load_state_dict({"elapsed_s": ckpt.elapsed_s})  # training time carried on
        if self.history:
            best = max(self.history, key=lambda m: m[self.cfg.monitor])
            self.best = {"value": best[self.cfg.monitor], "epoch": best["epoch"],
                         "state": copy.deepcopy(ckpt.state_dict),
                         "logit_adjust": ckpt.logit_adjust, "temperature": ckpt.temperature}


def soften(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities (N, 7) as their logits divided by `temperature` would give them (Hinton et
    al. 2015): log p is the logits up to a per-row constant, which the softmax removes."""
    return torch.softmax(torch.log(probs.clamp_min(1e-8)) / temperature, dim=1)


def distillation_loss(logits: torch.Tensor, soft: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 KL(soft || softmax(logits / T)), batch mean: T^2 keeps its gradients' scale as T
    changes, so the weight beside the labels' loss means the same at any temperature."""
    log_student = F.log_softmax(logits / temperature, dim=1)
    return temperature ** 2 * F.kl_div(log_student, soft, reduction="batchmean")
