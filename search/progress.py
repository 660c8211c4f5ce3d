"""One line per trial event and epoch, instead of Tune's periodic full tables, and how each
trial ended: finished, stopped by ASHA (at which rung, ranked how), by the time budget, or failed."""
from __future__ import annotations

import sys

from ray.tune import Callback

from search.context import current


def outcome(run_ends: str, over: bool, plan=None, at: float | None = None, rank: tuple[int, int] | None = None,
            scheduler: str = "asha") -> str:
    """How a trial that is no longer running ended, in words.

    `run_ends`: why the trial's own loop ended ("epochs", "time budget", "early stopping", from
    fer's Trainer), or "" when Tune stopped it: at the sweep's deadline (`over`), or the scheduler
    at a rung of `plan` (search.plan.Plan), the highest at or below `at` (the trial's value of the
    plan's time attribute), where `rank` is (its place, trials scored there) by the metric."""
    if run_ends == "epochs":
        return "finished"
    if run_ends == "divergence":
        return "stopped: its training loss went NaN (diverged; its best epoch before that is kept)"
    if run_ends:
        return f"ended by its {run_ends}"
    if over:
        return "stopped by the sweep's time budget"
    if scheduler == "asha":
        rung = plan.rung_at(at) if plan is not None else None
        return "stopped by ASHA" + (f" ({plan.rung_name(rung)}: rank {rank[0]} of {rank[1]})" if rung and rank else "")
    return "stopped"


def rank_at(scores: dict[str, float], trial_id: str) -> tuple[int, int] | None:
    """(place of trial_id, number of trials) among the scores of one rung, best first."""
    if trial_id not in scores:
        return None
    return 1 + sum(v > scores[trial_id] for v in scores.values()), len(scores)


class EpochPrinter(Callback):
    """The sweep's lines. A trial's first result also says what it trains at (fer.speed's choice and
    rate) and, once per sweep, a warning about an explicit bf16 slower than fp32 here."""

    def __init__(self, label: str, metric: str, scheduler: str = "asha"):
        self.label, self.metric, self.scheduler = label, metric, scheduler
        self.seen: dict[str, list[tuple[float, float]]] = {}  # trial_id -> [(time attr, metric)] per result
        self.warned: set[str] = set()

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
        plan = current().plan
        at = result.get(plan.time_attr if plan else "training_iteration", result["training_iteration"])
        self.seen.setdefault(trial.trial_id, []).append((at, result[self.metric]))
        if len(self.seen[trial.trial_id]) == 1 and result.get("speed"):
            self._say(f"{trial.trial_id} trains at {result['speed']}")
        if (warning := result.get("speed_warning")) and warning not in self.warned:
            self.warned.add(warning)
            self._say(f"warning: {warning}")
        tau = f"  tau {result['logit_adjust']:.2f}" if result.get("logit_adjust") else ""
        self._say(f"{trial.trial_id} epoch {result['training_iteration']:3d}  {self.metric} {result[self.metric]:.4f}  "
                  f"train_loss {result['train_loss']:.4f}  lr {result['lr']:.2g}{tau}  {result['epoch_s']:.1f}s")

    def rung_scores(self, rung: float) -> dict[str, float]:
        """Each trial's score at its first result at or past `rung`, as ASHA records it."""
        return {t: next(score for at, score in seen if at >= rung) for t, seen in self.seen.items()
                if any(at >= rung for at, _ in seen)}

    def on_trial_complete(self, iteration, trials, trial, **info):
        epochs = trial.last_result.get("training_iteration", 0)
        best = trial.metric_analysis.get(self.metric, {}).get("max", float("nan"))
        context = current()
        plan, budget = context.plan, context.budget
        at = trial.last_result.get(plan.time_attr) if plan else None
        rung = plan.rung_at(at) if plan is not None and self.scheduler == "asha" else None
        rank = rank_at(self.rung_scores(rung), trial.trial_id) if rung else None
        how = outcome(trial.last_result.get("run_ends", ""), budget is not None and budget.over(), plan, at, rank,
                      self.scheduler)
        context.endings[trial.trial_id] = how
        running = sum(t.status == "RUNNING" for t in trials)
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        self._say(f"{trial.trial_id} {how} after {epochs} epoch{'s' * (epochs != 1)} (best {self.metric} {best:.4f}); "
                  f"{done} done, {running} running")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._say(f"{trial.trial_id} failed (attempt {trial.num_failures}); Tune retries it from its last checkpoint")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._say(f"{trial.trial_id} failed after {trial.num_failures} attempts; no more retries")
