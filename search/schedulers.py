"""Which trials stop and which grow: ASHA (or FIFO) at the plan's rungs, wrapped so that freed
CPUs go to the running trials once no new trial starts."""
from __future__ import annotations

import math
import time

import ray
from ray.tune.execution.placement_groups import PlacementGroupFactory
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, ResourceChangingScheduler
from ray.tune.schedulers.resource_changing_scheduler import DistributeResources

from search.limiter import BudgetLimiter
from search.plan import Plan
from search.rungs import RecheckedASHA
from search.space import SearchSpace


def grows_trials(space: SearchSpace) -> bool:
    """Whether trials take up freed CPUs: CPU-only trials (a GPU trial does not speed up with more
    CPUs, and fractional GPUs would be rounded to whole ones) under a time budget, whose survivors
    run to the deadline. Otherwise Tune reuses each trial's worker for the next trial (no new
    process, no torch import): growing and reusing exclude each other in Tune."""
    s = space.settings
    return s.grow_trials and not s.gpus_per_trial and bool(s.time_budget_s)


class DistributeWithinNode(DistributeResources):
    """Tune's even split of free CPUs, once the searcher starts no new trials (before that, freed
    CPUs are for the next trial: growing a trial then would pause it only to starve the next one),
    capped at the smallest node's CPUs. Tune counts the whole cluster's CPUs, but a trial is one
    process on one node: CPUs elsewhere cannot speed it up, and a request bigger than every node
    would leave the trial pending for ever."""

    NODES_EVERY_S = 30.0  # ray.nodes() is a call to Ray's control store: not once per result

    def __init__(self, limiter: BudgetLimiter, **kwargs):
        super().__init__(**kwargs)
        self.limiter = limiter
        self._cap, self._cap_at = 0.0, -math.inf

    def node_cap(self) -> float:
        """CPUs of the smallest live node with CPUs, read at most every NODES_EVERY_S seconds."""
        if time.monotonic() - self._cap_at > self.NODES_EVERY_S:
            node_cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]]
            self._cap, self._cap_at = min((c for c in node_cpus if c > 0), default=0), time.monotonic()
        return self._cap

    def __call__(self, tune_controller, trial, result, scheduler):
        if not self.limiter.starts_no_more or result.get("run_ends"):
            return None  # (a trial whose run just ended, at its last epoch, would restart only to end)
        pgf = super().__call__(tune_controller, trial, result, scheduler)
        if pgf is None:
            return None
        cap = self.node_cap()
        if pgf.required_resources.get("CPU", 0) <= cap:
            return pgf
        step = self.increase_by["CPU"]
        base = scheduler.base_trial_resources.required_resources.get("CPU", step)
        bundles = [dict(b) for b in pgf.bundles]
        bundles[0]["CPU"] = max(base, step * (cap // step))  # one bundle: add_bundles is off
        return PlacementGroupFactory(bundles, strategy=pgf.strategy)


def make_base_scheduler(space: SearchSpace, plan: Plan):
    """ASHA at the plan's rungs (re-checking them if the space asks), or FIFO. A plan with no rung
    (the first would not fit the budget on this machine) stops no trial before the deadline."""
    s = space.settings
    if s.scheduler == "fifo":
        return FIFOScheduler()
    asha = RecheckedASHA if s.recheck_rungs else ASHAScheduler
    return asha(time_attr=plan.time_attr, max_t=plan.max_t, grace_period=plan.rungs[0] if plan.rungs else plan.max_t,
                reduction_factor=s.reduction_factor)


def make_scheduler(space: SearchSpace, limiter: BudgetLimiter, plan: Plan):
    """The base scheduler, wrapped so that CPUs freed by stopped trials, once the searcher starts
    no new ones, are spread over the running trials (they restart from their last epoch's
    checkpoint with more CPUs; search.trainable sets torch's threads to match)."""
    base = make_base_scheduler(space, plan)
    if not grows_trials(space):
        return base
    grow = DistributeWithinNode(limiter, increase_by={"CPU": space.settings.cpus_per_trial})
    return ResourceChangingScheduler(base, grow)
