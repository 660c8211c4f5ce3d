"""The bare peers of benchmarks/peers.py, written as their users write them, over fer's training.

Each peer trains a trial with the same fer code as `search run` (fer.train.Trainer, one epoch at
a time, on the same holdout) and logs what the comparison needs beside it: one JSON line per
epoch (when it ended, the metric, its seconds) and the trial's best epoch as a fer checkpoint.
The logs live in the system's folder on this machine (the benchmark runs on one machine).

- Ray Tune, bare: `tune.Tuner` with `OptunaSearch()` (its defaults: TPE) and `ASHAScheduler` at
  its API defaults (`max_t=100`, `grace_period=1`, `reduction_factor=4`, over
  `training_iteration`), as the Ray Tune API reference (ray.tune.schedulers.ASHAScheduler) and the
  "Running Tune experiments with Optuna" example set them up; `time_budget_s` the budget,
  `max_concurrent_trials` floor(CPUs / cpus_per_trial) (or the space's max_concurrent, if lower),
  `num_samples=-1` (until the budget ends).
- Optuna, bare: `study.optimize(objective, timeout=budget, n_jobs=...)` with `TPESampler()` and
  `MedianPruner()` at their defaults, reporting each epoch (`trial.report`, `trial.should_prune`),
  as Optuna's tutorial "Efficient Optimization Algorithms" (pruning) and optuna-examples'
  pytorch_simple.py do; n_jobs as many threads as Ray Tune's trials at a time.

Both train `max_t` (100) epochs per trial at most, the ASHA default a Tune user starts from.
Optuna's `timeout` stops starting trials but lets running ones finish; so that every system gets
the same wall-clock budget, the harness ends a trial at the deadline (an epoch that would end
after it is not counted), as Tune's `time_budget_s` does.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from fer.config import resolve_run
from fer.data import FaceSet, split_for_training
from fer.train import Trainer

MAX_T = 100  # ASHAScheduler's default max_t: a bare peer's epochs per trial


class TrialLog:
    """One trial's epochs (JSON lines) and its best epoch's checkpoint, under the system's folder."""

    def __init__(self, folder: Path, trial: str):
        self.lines = folder / "log" / f"{trial}.jsonl"
        self.kept = folder / "kept" / f"{trial}.pt"
        self.lines.parent.mkdir(parents=True, exist_ok=True)
        self.kept.parent.mkdir(parents=True, exist_ok=True)
        self.trial, self.best = trial, float("-inf")
        self._write({"epoch": 0})  # started

    def _write(self, row: dict) -> None:
        with open(self.lines, "a") as f:
            f.write(json.dumps({"trial": self.trial, "time": time.time(), **row}) + "\n")

    def epoch(self, metrics: dict, metric: str, trainer: Trainer, data: dict) -> None:
        value = float(metrics[metric])
        if value > self.best:  # the trial's selection: its best epoch so far
            self.best = value
            trainer.checkpoint(data).save(self.kept)
        self._write({"epoch": metrics["epoch"], "value": value, "wall_s": metrics["epoch_wall_s"]})


def train_trial(config: dict, faces: FaceSet, metric: str, log: TrialLog, deadline: float, report) -> float:
    """fer's training of one sampled config, `report(metrics)` after each epoch (it may raise to
    stop the trial); the trial's best metric. Ends at the deadline (see the module docstring)."""
    run = resolve_run({"model": config["model"], "train": {**config["train"], "epochs": MAX_T}},
                      source="trial config")
    train, val, data = split_for_training(faces, run["train"])
    trainer = Trainer.from_run(run, train, val)
    for metrics in trainer.epochs():
        if time.time() > deadline or metrics["run_ends"] == "divergence":
            break
        log.epoch(metrics, metric, trainer, data)
        report(metrics)
    return log.best


def run_tune(space, faces: FaceSet, folder: Path, budget: float, seed: int, cpus: float, slots: int,
             address: str | None) -> None:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    metric = space.settings.metric
    # a trial the harness ends at the deadline before its first epoch returns with no result; Tune's
    # strict check would fail the whole run for that (time_budget_s alone would have stopped it first)
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    ray.init(address=address or "local", include_dashboard=False, logging_level="ERROR")
    deadline = time.time() + budget

    def trainable(config, faces=None):
        torch.set_num_threads(max(1, int(cpus)))
        log = TrialLog(folder, tune.get_context().get_trial_id())
        train_trial(config, faces, metric, log, deadline, lambda m: tune.report({metric: m[metric]}))

    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, faces=faces), {"cpu": cpus}),
        tune_config=tune.TuneConfig(
            search_alg=OptunaSearch(space=space.define_by_run, metric=metric, mode="max", seed=seed),
            scheduler=ASHAScheduler(metric=metric, mode="max"), num_samples=-1, time_budget_s=budget,
            max_concurrent_trials=slots),
        run_config=tune.RunConfig(storage_path=str(folder.resolve()), name="tune", verbose=0))
    tuner.fit()
    ray.shutdown()


def run_optuna(space, faces: FaceSet, folder: Path, budget: float, seed: int, cpus: float, slots: int) -> None:
    import optuna

    from search.space import unflatten

    metric = space.settings.metric
    torch.set_num_threads(max(1, int(cpus)))  # (process-wide: each of the n_jobs threads trains at this)
    deadline = time.time() + budget

    def objective(trial: optuna.Trial) -> float:
        config = unflatten(space.define_by_run(trial))

        def report(metrics: dict) -> None:
            trial.report(metrics[metric], metrics["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        return train_trial(config, faces, metric, TrialLog(folder, f"optuna{trial.number:04d}"), deadline, report)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner())
    study.optimize(objective, timeout=budget, n_jobs=slots)


def cpus_here() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
