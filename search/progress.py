"""One line per trial event and epoch, instead of Tune's periodic full tables."""
from __future__ import annotations

import sys

from ray.tune import Callback


class EpochPrinter(Callback):
    def __init__(self, label: str, metric: str):
        self.label, self.metric = label, metric

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
        tau = f"  tau {result['logit_adjust']:.2f}" if result.get("logit_adjust") else ""
        self._say(f"{trial.trial_id} epoch {result['training_iteration']:3d}  {self.metric} {result[self.metric]:.4f}  "
                  f"train_loss {result['train_loss']:.4f}  lr {result['lr']:.2g}{tau}  {result['epoch_s']:.1f}s")

    def on_trial_complete(self, iteration, trials, trial, **info):
        best = trial.metric_analysis.get(self.metric, {}).get("max", float("nan"))
        running = sum(t.status == "RUNNING" for t in trials)
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        self._say(f"{trial.trial_id} finished after {trial.last_result.get('training_iteration', 0)} epochs "
                  f"(best {self.metric} {best:.4f}); {done} done, {running} running")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._say(f"{trial.trial_id} failed (attempt {trial.num_failures}); Tune retries it from its last checkpoint")
