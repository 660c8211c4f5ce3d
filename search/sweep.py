"""Build and run one Tune experiment per search space: Optuna (seeded TPE) behind a
ConcurrencyLimiter, ASHA early stopping, best-epoch checkpoints, retries, resume.

ASHA stops weak trials at the rungs search.plan derives (under a time budget, in seconds of
training at shares of the budget; else in epochs) and the trial enters the study
(search.study) *complete*, with its best score up to there, so TPE learns from early scores.
The budget (search.budget) is created here, per sweep, and handed to everything that needs
its deadline.
"""
from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
import warnings
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune.execution.placement_groups import PlacementGroupFactory
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, ResourceChangingScheduler
from ray.tune.schedulers.resource_changing_scheduler import DistributeResources
from ray.tune.search import ConcurrencyLimiter, Searcher

from fer.atomic import write_text
from search.budget import Budget, BudgetMeter
from search.context import current, joined
from search.interrupt import SignalWatch, received
from search.live import LiveStatus
from search.plan import Plan, make_plan, measure_epoch
from search.progress import EpochPrinter
from search.resources import cluster_total, concurrency
from search.results import SWEEP_FILE
from search.rungs import RecheckedASHA
from search.space import SearchSpace
from search.storage import StorageWatch, drop_partial_checkpoints, restore_recorded_checkpoints
from search.storage import failure as storage_failure
from search.study import StudySearch, default_url, finish_study, prepare_study, publish_study, without_password
from search.uri import is_local, trial_folder
from search.warmstart import unseen_points

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def trial_dirname(trial) -> str:
    """Short trial folders: Tune's default packs every hyperparameter into the name."""
    return trial_folder(trial.trial_id)


def experiment_path(storage: str, name: str, space: SearchSpace) -> str:
    return f"{storage.rstrip('/')}/{name}/{space.name}"


class BudgetLimiter(ConcurrencyLimiter):
    """A ConcurrencyLimiter that, under a time budget, stops suggesting once the plan's window
    for new trials has closed, or once the time left could not take a new trial through its
    start-up, the plan's first rung and one more epoch at the median times so far, so the
    budget is not spent on trials that could only be cut short. Start-up (worker start,
    imports, data, the precision measurement) is the time from suggestion to first result less
    that epoch. The first wave (max_concurrent trials) always starts: the resources are there.

    The budget is the sweep's (search.budget); a restored limiter, unpickled with the
    experiment, takes the running sweep's fresh budget and plan from search.context.
    `starts_no_more` tells the scheduler (DistributeWithinNode) when the trials that run are
    all there will be."""

    def __init__(self, searcher: Searcher, max_concurrent: int, budget: Budget | None = None,
                 plan: Plan | None = None, num_samples: int | None = None):
        super().__init__(searcher, max_concurrent)
        self.budget, self.plan, self.num_samples = budget, plan, num_samples
        self.epoch_seconds: list[float] = []
        self.startup_seconds: list[float] = []
        self.started = 0  # trials suggested so far
        self._suggested_at: dict[str, float] = {}
        self._told = False

    @property
    def starts_no_more(self) -> bool:
        """True once no new trial will start: the budget said so, or every trial asked for started."""
        return self._told or (self.num_samples is not None and self.started >= self.num_samples)

    def _no_room(self) -> str | None:
        """Why no new trial may start now, or None (the first wave always starts)."""
        if self.budget is None or self.started < self.max_concurrent:
            return None
        epoch = statistics.median(self.epoch_seconds) if self.epoch_seconds else None
        return self.budget.why_no_new_trial(self.plan, epoch, statistics.median(self.startup_seconds or [0.0]))

    def suggest(self, trial_id: str):
        if (why := self._no_room()) is not None:
            if not self._told:
                print(why, flush=True)
                self._told = True
            return Searcher.FINISHED
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            self._suggested_at[trial_id] = self.budget.clock() if self.budget else time.time()
            self.started += 1
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        seconds = result.get("epoch_wall_s", result.get("time_this_iter_s"))
        if seconds is not None:
            self.epoch_seconds.append(seconds)
            if trial_id in self._suggested_at:  # the trial's first result
                now = self.budget.clock() if self.budget else time.time()
                self.startup_seconds.append(max(0.0, now - self._suggested_at.pop(trial_id) - seconds))
        super().on_trial_result(trial_id, result)

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.budget = current().budget or self.budget  # a resumed sweep starts a fresh budget
        self.plan = current().plan or self.plan
        self._suggested_at, self._told = {}, False


def make_searcher(space: SearchSpace, seed: int, storage=None, study_name: str = "optuna",
                  trials_path: str = "", imported: list | None = None, budget: Budget | None = None,
                  plan: Plan | None = None) -> BudgetLimiter:
    """Seeded TPE (or random) through StudySearch, writing the study to `storage` (None: memory).
    The space's warm_start points go first, but for those an imported trial has measured."""
    s = space.settings
    sampler = (optuna.samplers.RandomSampler(seed=seed) if s.searcher == "random" else
               optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, (s.trials or 16) // 3)),
                                          multivariate=True, group=True))
    points = unseen_points(space.warm_start_points(), imported or [])
    searcher = StudySearch(space, sampler=sampler, points=points, storage=storage, study_name=study_name,
                           trials_path=trials_path)
    return BudgetLimiter(searcher, s.max_concurrent, budget, plan, s.trials)


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
        if not self.limiter.starts_no_more:
            return None
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


def make_tuner(space: SearchSpace, train_fn, params: dict, storage: str, name: str, seed: int,
               resume: bool, study=None, imported: list | None = None, budget: Budget | None = None,
               plan: Plan | None = None) -> tune.Tuner:
    """A new Tuner, or the interrupted experiment's when resuming (searcher state included, its
    study's storage with it). With a time budget, trials get its deadline (`deadline=` epoch
    seconds) to fit inside it, and Tune's own time budget is the time left."""
    s = space.settings
    budget = budget or Budget(s.time_budget_s)
    plan = plan or make_plan(s, s.time_budget_s)
    path = experiment_path(storage, name, space)
    params = {**params, "deadline": budget.deadline, "progress_to": path if is_local(storage) else None}
    trainable = tune.with_parameters(train_fn, **params)
    trainable = tune.with_resources(trainable, {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial})
    if resume and tune.Tuner.can_restore(path):
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    run_config = tune.RunConfig(
        name=space.name,
        storage_path=f"{storage.rstrip('/')}/{name}",
        checkpoint_config=tune.CheckpointConfig(num_to_keep=s.keep_checkpoints, checkpoint_score_attribute=s.metric,
                                                checkpoint_score_order="max"),
        failure_config=tune.FailureConfig(max_failures=s.max_failures),
        callbacks=[EpochPrinter(space.name, s.metric, s.scheduler), LiveStatus(space.name, s.metric), BudgetMeter(),
                   SignalWatch(), *([StorageWatch(f"{storage.rstrip('/')}/{name}")] if is_local(storage) else [])],
        verbose=0,
    )
    searcher = make_searcher(space, seed, study, study_name(name, space), path, imported, budget, plan)
    tune_config = tune.TuneConfig(metric=s.metric, mode="max", search_alg=searcher,
                                  scheduler=make_scheduler(space, searcher, plan), num_samples=s.trials or -1,
                                  time_budget_s=budget.left() if budget.deadline else None,
                                  reuse_actors=not grows_trials(space), trial_dirname_creator=trial_dirname)
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)


def write_sweep_info(space: SearchSpace, storage: str, name: str, seed: int, study_url: str | None = None,
                     plan: Plan | None = None) -> None:
    """sweep.json beside Tune's files: what `search best|table` and analysis need to read it,
    the study's storage (without its password) and name among it, and the plan the sweep ran."""
    info = {"family": space.family, "name": space.name, "source": space.source, "metric": space.settings.metric,
            "searched": [p.key for p in space.params], "seed": seed, "settings": vars(space.settings),
            "optuna_storage": without_password(study_url)[0] if study_url else None,
            "study_name": study_name(name, space),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "plan": {**plan._asdict(), "line": plan.line()} if plan else None}
    path = experiment_path(storage, name, space)
    if not is_local(path):
        import pyarrow.fs

        fs, root = pyarrow.fs.FileSystem.from_uri(path)
        fs.create_dir(root, recursive=True)
        with fs.open_output_stream(f"{root}/{SWEEP_FILE}") as f:
            f.write(json.dumps(info, indent=2, default=str).encode())
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    write_text(Path(path) / SWEEP_FILE, json.dumps(info, indent=2, default=str))


def settle_concurrency(space: SearchSpace) -> str:
    """Fill in settings.max_concurrent (None: what the cluster holds); returns why that figure."""
    s = space.settings
    n, why = concurrency(s.cpus_per_trial, s.gpus_per_trial, s.max_concurrent)
    space.settings = dataclasses.replace(s, max_concurrent=n)
    return why


def plan_sweep(space: SearchSpace, faces=None) -> tuple[Budget, Plan]:
    """The sweep's budget (its clock starts now) and plan: under a time budget with ASHA, from the
    epoch time of its first trial's config measured here (search.plan); printed before trials start.
    Both go to the running experiment's search.context, where the callbacks and a restored searcher find them."""
    s = space.settings
    unit = "GPU" if s.gpus_per_trial else "CPU"
    budget = Budget(s.time_budget_s, cluster_total(unit), unit)
    measured = measure_epoch(space, faces) if faces is not None and s.time_budget_s and s.scheduler == "asha" \
        else None
    epoch_s, words, rate = measured or (None, "", None)
    plan = make_plan(s, s.time_budget_s, epoch_s, words, images_per_s=rate)
    print(f"[{space.name}] {plan.line()}", flush=True)
    current().start_sweep(budget, plan)
    return budget, plan


def study_name(name: str, space: SearchSpace) -> str:
    """The sweep's study is named as the sweep is shown: experiment/sweep."""
    return f"{name}/{space.name}"


def run_sweep(space: SearchSpace, train_fn, storage: str, name: str, seed: int = 0, resume: bool = False,
              optuna_storage: str | None = None, imported: list | None = None, **params) -> tune.ResultGrid:
    """Run (or resume) one space's experiment: `train_fn(config, **params)` is each trial. The
    study goes to `optuna_storage` (default: optuna.db in the experiment folder), a new one
    seeded with `imported` trials (search.warmstart). It runs in the experiment's context
    (search.context), or in one of its own when run alone."""
    with joined():
        return _run_sweep(space, train_fn, storage, name, seed, resume, optuna_storage, imported, **params)


def _run_sweep(space: SearchSpace, train_fn, storage: str, name: str, seed: int, resume: bool,
               optuna_storage: str | None, imported: list | None, **params) -> tune.ResultGrid:
    if space.settings.max_concurrent is None:
        settle_concurrency(space)
    path = experiment_path(storage, name, space)
    restoring = resume and tune.Tuner.can_restore(path)
    if resume and not restoring:
        print(f"nothing to resume at {path}: starting the sweep", flush=True)
    if restoring and (dropped := drop_partial_checkpoints(path)):
        print(f"removed {len(dropped)} checkpoint(s) cut short when the storage failed", flush=True)
    if restoring and (mended := restore_recorded_checkpoints(path)):
        print(f"{len(mended)} trial(s) resume from their newest checkpoint: Tune had deleted the one it "
              "recorded before the sweep stopped", flush=True)
    budget, plan = plan_sweep(space, params.get("faces"))
    url = optuna_storage or default_url(path)
    # with --resume, an existing study is continued even without Tune's state (a driver killed between the two)
    study = prepare_study(url, study_name(name, space), space, resume, imported)
    if not restoring:
        write_sweep_info(space, storage, name, seed, optuna_storage or (url if is_local(path) else None), plan)
    try:
        grid = make_tuner(space, train_fn, params, storage, name, seed, resume, study, imported, budget, plan).fit()
        if not received() and storage_failure() is None:  # every trial has ended
            _, failed = finish_study(study, study_name(name, space), grid, space.settings.metric)
            if failed:
                print(f"study {study_name(name, space)}: {failed} trial(s) that never reported an epoch marked FAIL",
                      flush=True)
    finally:
        if not optuna_storage:
            publish_study(url, path)  # (a URI experiment's study, staged on this driver)
    return grid

