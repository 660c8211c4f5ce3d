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
import time
import warnings
from pathlib import Path

import optuna
from ray import tune

from fer.atomic import write_text
from search.budget import Budget, BudgetMeter
from search.context import current, joined
from search.interrupt import SignalWatch, received
from search.limiter import SweepGenerator, make_searcher
from search.live import LiveStatus
from search.plan import Plan, make_plan, measure_epoch
from search.progress import EpochPrinter
from search.request import Request
from search.resources import cluster_total, concurrency
from search.results import SWEEP_FILE
from search.schedulers import grows_trials, make_scheduler
from search.space import SearchSpace
from search.storage import StorageWatch, check_tune_state, drop_partial_checkpoints, restore_recorded_checkpoints
from search.storage import failure as storage_failure
from search.study import default_url, finish_study, prepare_study, publish_study, without_password
from search.uri import is_local, trial_folder, trial_id_of

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def trial_dirname(trial) -> str:
    """Short trial folders: Tune's default packs every hyperparameter into the name."""
    return trial_folder(trial.trial_id)


def experiment_path(storage: str, name: str, space: SearchSpace) -> str:
    return f"{storage.rstrip('/')}/{name}/{space.name}"


def make_tuner(space: SearchSpace, request: Request, train_fn, params: dict, study, budget: Budget,
               plan: Plan) -> tune.Tuner:
    """A new Tuner, or the interrupted experiment's when `request.resume` finds one (searcher
    state included, its study's storage with it). With a time budget, trials get its deadline
    (`deadline=` epoch seconds) to fit inside it, and Tune's own time budget is the time left."""
    s, storage, name = space.settings, request.storage, request.name
    path = experiment_path(storage, name, space)
    params = {**params, "deadline": budget.deadline, "progress_to": path if is_local(storage) else None}
    trainable = tune.with_parameters(train_fn, **params)
    trainable = tune.with_resources(trainable, {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial})
    if request.resume and tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
        current().restored_trials = _restored_trials(tuner)
        return tuner
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
    searcher = make_searcher(space, request.seed, study, study_name(name, space), path,
                             request.imported_for(space.name), budget, plan)
    tune_config = tune.TuneConfig(metric=s.metric, mode="max", search_alg=SweepGenerator(searcher),
                                  scheduler=make_scheduler(space, searcher, plan), num_samples=s.trials or -1,
                                  time_budget_s=budget.left() if budget.deadline else None,
                                  reuse_actors=not grows_trials(space), trial_dirname_creator=trial_dirname)
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)


def _restored_trials(tuner: tune.Tuner) -> set[str] | None:
    """The ids of the trials in a restored Tuner's experiment state (None: Tune could not read it)."""
    try:
        grid = tuner.get_results()
    except RuntimeError:
        return None
    return {trial_id_of(Path(r.path).name) for r in grid}


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
    plan = make_plan(s, budget, epoch_s, words, images_per_s=rate)
    current().say(f"[{space.name}] {plan.line()}")
    current().start_sweep(budget, plan)
    return budget, plan


def study_name(name: str, space: SearchSpace) -> str:
    """The sweep's study is named as the sweep is shown: experiment/sweep."""
    return f"{name}/{space.name}"


def run_sweep(space: SearchSpace, train_fn, request: Request, **params) -> tune.ResultGrid:
    """Run (or resume) one space's experiment: `train_fn(config, **params)` is each trial. The
    study goes to `request.optuna_storage` (default: optuna.db in the experiment folder), a new
    one seeded with the request's imported trials (search.warmstart). It runs in the
    experiment's context (search.context), or in one of its own when run alone."""
    with joined():
        return _run_sweep(space, train_fn, request, **params)


def _run_sweep(space: SearchSpace, train_fn, request: Request, **params) -> tune.ResultGrid:
    storage, name, optuna_storage = request.storage, request.name, request.optuna_storage
    if space.settings.max_concurrent is None:
        settle_concurrency(space)
    path = experiment_path(storage, name, space)
    restoring = request.resume and tune.Tuner.can_restore(path)
    if request.resume and not restoring:
        current().say(f"nothing to resume at {path}: starting the sweep")
    if restoring and (dropped := drop_partial_checkpoints(path)):
        current().say(f"removed {len(dropped)} checkpoint(s) cut short when the storage failed")
    if restoring and (searcher_mended := check_tune_state(path)):
        current().say(searcher_mended)
    if restoring and (mended := restore_recorded_checkpoints(path)):
        current().say(f"{len(mended)} trial(s) resume from their newest checkpoint: Tune had deleted the one "
                      "it recorded before the sweep stopped")
    budget, plan = plan_sweep(space, params.get("faces"))
    url = optuna_storage or default_url(path)
    # with --resume, an existing study is continued even without Tune's state (a driver killed between the two)
    study = prepare_study(url, study_name(name, space), space, request.resume, request.imported_for(space.name))
    if not restoring:
        write_sweep_info(space, storage, name, request.seed, optuna_storage or (url if is_local(path) else None), plan)
    try:
        grid = make_tuner(space, request, train_fn, params, study, budget, plan).fit()
        if not received() and storage_failure() is None:  # every trial has ended
            _, failed = finish_study(study, study_name(name, space), grid, space.settings.metric)
            if failed:
                current().say(f"study {study_name(name, space)}: {failed} trial(s) that never reported an epoch "
                              "marked FAIL")
    finally:
        if not optuna_storage:
            publish_study(url, path)  # (a URI experiment's study, staged on this driver)
    return grid

