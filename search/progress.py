"""One line per trial event and epoch, instead of Tune's periodic full tables, and how each
trial ended: finished, stopped by ASHA (at which rung, ranked how), by the time budget, or failed."""
from __future__ import annotations

import sys
import time

from ray.tune import Callback

ENDINGS: dict[str, str] = {}  # trial_id -> how it ended, as printed (module state: a restored
# experiment brings its own unpickled printer)


def asha_rung(epoch: int, grace_period: int, reduction_factor: int) -> int | None:
    """The highest ASHA milestone (grace_period * reduction_factor^k) at or below `epoch`."""
    rung, m = None, grace_period
    while m <= epoch:
        rung, m = m, m * reduction_factor
    return rung


def outcome(epochs: int, run_ends: str, settings, deadline: float | None, rank: tuple[int, int] | None) -> str:
    """How a trial that is no longer running ended, in words.

    `run_ends`: why the trial's own loop ended ("epochs", "time budget", "early stopping", from
    fer's Trainer), or "" when Tune stopped it: at the sweep's deadline, or the scheduler at a
    rung, where `rank` is (its place, trials scored there) by the metric at that epoch."""
    if run_ends == "epochs":
        return "finished"
    if run_ends:
        return f"ended by its {run_ends}"
    if deadline and time.time() >= deadline - 1:
        return "stopped by the sweep's time budget"
    if settings.scheduler == "asha":
        rung = asha_rung(epochs, settings.grace_period, settings.reduction_factor)
        return "stopped by ASHA" + (f" (rung {rung}: rank {rank[0]} of {rank[1]})" if rung and rank else "")
    return "stopped"


def rank_at(scores: dict[str, float], trial_id: str) -> tuple[int, int] | None:
    """(place of trial_id, number of trials) among the scores of one epoch, best first."""
    if trial_id not in scores:
        return None
    return 1 + sum(v > scores[trial_id] for v in scores.values()), len(scores)


class EpochPrinter(Callback):
    def __init__(self, label: str, metric: str, settings=None, deadline: float | None = None):
        self.label, self.metric, self.settings, self.deadline = label, metric, settings, deadline
        self.scores: dict[int, dict[str, float]] = {}  # epoch -> {trial_id: metric at that epoch}

    def _say(self, text: str) -> None:
        print(f"[{self.label}] {text}", file=sys.stdout, flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.last_result.get("training_iteration"):  # paused to take up freed CPUs, or retried
            cpus = trial.placement_group_factory.required_resources.get("CPU", 0)
            self._say(f"{trial.trial_id} continues from epoch {trial.last_result['training_iteration']} "
                      f"with {cpus:g} CPUs")
            return
        searched = {k: v for k, v in trial.config.get("train", {}).items() if k in ("lr", "optimizer", "batch_size")}
        self._say(f"{trial.trial_id} started {searched}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.scores.setdefault(result["training_iteration"], {})[trial.trial_id] = result[self.metric]
        tau = f"  tau {result['logit_adjust']:.2f}" if result.get("logit_adjust") else ""
        self._say(f"{trial.trial_id} epoch {result['training_iteration']:3d}  {self.metric} {result[self.metric]:.4f}  "
                  f"train_loss {result['train_loss']:.4f}  lr {result['lr']:.2g}{tau}  {result['epoch_s']:.1f}s")

    def on_trial_complete(self, iteration, trials, trial, **info):
        epochs = trial.last_result.get("training_iteration", 0)
        best = trial.metric_analysis.get(self.metric, {}).get("max", float("nan"))
        how = "finished"
        if self.settings is not None:
            s = self.settings
            rung = asha_rung(epochs, s.grace_period, s.reduction_factor) if s.scheduler == "asha" else None
            rank = rank_at(self.scores.get(rung, {}), trial.trial_id) if rung else None
            how = outcome(epochs, trial.last_result.get("run_ends", ""), s, self.deadline, rank)
        ENDINGS[trial.trial_id] = how
        running = sum(t.status == "RUNNING" for t in trials)
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        self._say(f"{trial.trial_id} {how} after {epochs} epoch{'s' * (epochs != 1)} (best {self.metric} {best:.4f}); "
                  f"{done} done, {running} running")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._say(f"{trial.trial_id} failed (attempt {trial.num_failures}); Tune retries it from its last checkpoint")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._say(f"{trial.trial_id} failed after {trial.num_failures} attempts; no more retries")
