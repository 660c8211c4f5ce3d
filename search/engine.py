"""The sweep engine behind `search run`: parse the data once, start Ray, keep the storage reserve,
run each space's sweep, and return what happened as an Outcome; the CLI parses and prints.

What a sweep's callbacks report comes back through a search.context.SweepContext, one per experiment.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fer.command import catch_interrupts
from fer.errors import FerError
from search.budget import BudgetUse
from search.context import SweepContext, current
from search.request import Request  # noqa: F401  (the CLI builds it from here)


class StorageFailed(Exception):
    """The storage filled up or failed during a sweep (search.storage stopped it)."""


@dataclass
class SweepOutcome:
    """One sweep: its trials (a DataFrame, best first; None if none ran), the lines of the trials
    that failed after their retries, and the use of its budget."""

    name: str
    metric: str
    table: object | None
    failed: list[str]
    budget: BudgetUse | None
    ended_before: bool = False  # resumed with every trial already ended: nothing ran


@dataclass
class Outcome:
    root: str  # the experiment folder (or URI)
    seconds: float = 0.0
    sweeps: list[SweepOutcome] = field(default_factory=list)
    stopping: threading.Thread | None = None  # the command's own Ray, stopping in the background

    def wait_for_ray(self, timeout_s: float = 60.0) -> None:
        """Return once the command's own Ray has stopped (at once when it joined a cluster), or
        after `timeout_s`: a stop that hangs is left to the process's end (fer.command.exit_process)."""
        if self.stopping is not None:
            self.stopping.join(timeout_s)

    @property
    def failed(self) -> list[str]:
        return [line for s in self.sweeps for line in s.failed]

    @property
    def trained(self) -> bool:
        """Whether a trial of any sweep finished an epoch: whether there is a model to report."""
        return any(s.table is not None and (s.table["epochs"] > 0).any() for s in self.sweeps)


def run_experiment(spaces: list, request: Request, on_sweep: Callable[[SweepOutcome], None] | None = None,
                   say: Callable[[str], None] | None = None) -> Outcome:
    """Run every sweep, one after another; `on_sweep` sees each one's outcome as it ends, `say`
    each line the engine and the sweeps have for the user (default: stdout).
    Raises KeyboardInterrupt after Ctrl-C or SIGTERM, StorageFailed when the storage fails."""
    with SweepContext(say).active():  # this experiment's budget, plan, endings, signals and voice
        return _run(spaces, request, on_sweep)


def _run(spaces: list, request: Request, on_sweep) -> Outcome:
    import ray

    from fer.data import is_synthetic, load_data
    from search import storage as store

    t0 = time.perf_counter()
    # parsed once per source; trials read it from the object store. A file is parsed before Ray
    # starts (a bad line is one line, Ray never started); the built-in faces, which cannot be bad,
    # are drawn while Ray starts (seconds of numpy on a fresh cache, which releases the GIL)
    sources = list(dict.fromkeys(request.data or space.data for space in spaces))
    datasets = {source: load_data(source) for source in sources if not is_synthetic(source)}
    built_in = [source for source in sources if is_synthetic(source)]
    outcome = Outcome(root=f"{request.storage}/{request.name}")
    with store.hold_reserve(outcome.root):  # before Ray: a storage without room is one line, Ray never started
        ours = not ray.is_initialized()
        with ThreadPoolExecutor(1, thread_name_prefix="draw-faces") as pool:
            drawn = pool.submit(lambda: {source: load_data(source) for source in built_in})
            start_ray(request.address, request.verbose)
            catch_interrupts()  # ray.init replaced the contract's SIGTERM handler with its own (a stack dump, exit 15)
            datasets.update(drawn.result())
        for sweep in _each_sweep(spaces, request, datasets):
            outcome.sweeps.append(sweep)
            if on_sweep:
                on_sweep(sweep)
    if ours:  # the sweeps are over. Stopping Ray is 1.3 s on 2 cores, nearly all of it waiting on its
        # processes to end: it runs beside what the caller does next (the report), which must then
        # wait_for_ray() before the command ends (Ray's atexit hook would stop it a second time)
        outcome.stopping = threading.Thread(target=ray.shutdown, name="stop-ray")
        outcome.stopping.start()
    outcome.seconds = time.perf_counter() - t0
    return outcome


CONNECT_TIMEOUT_S = 30.0  # how long joining a cluster may take before it counts as not answering


def ray_address(address: str | None) -> str:
    """Where ray.init goes. Without --address: RAY_ADDRESS when set (`ray job submit` sets it),
    else "local", a Ray of the command's own. Never ray.init(address=None), which joins whatever
    cluster Ray's ray_current_cluster file names: after a `ray start` head died without `ray
    stop`, that is a dead address, and ray.init retries it for as long as it runs."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


def start_ray(address: str | None, verbose: bool, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """The one place that sets how much Ray, Tune and Optuna say: unless --verbose, only errors
    from the driver, nothing from the workers (trials report through search.progress, failures
    in one line each; the full text stays in each trial's folder). A cluster that does not
    answer within `timeout_s` (and Ray's own current wait) is one line."""
    import logging
    import warnings

    import optuna

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.ERROR)
    if not verbose:
        warnings.filterwarnings("ignore", module=r"(ray|optuna)(\.|$)")
        os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")  # results of trials a stop left unread
    target = ray_address(address)
    if target != "local" and not _head_listens(target, timeout_s):
        raise _no_answer(target, timeout_s)
    _init_within(target, verbose, None if target == "local" else timeout_s)
    if not verbose:  # trial failures: one line each, from the CLI; Tune's warnings (among them the
        # controller's about ResourceChangingScheduler reading its reuse_actors flag) only with --verbose
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)


def _no_answer(target: str, timeout_s: float) -> FerError:
    return FerError(f"--address {target}: no Ray cluster answered within {timeout_s:.0f} s (a `ray start` head "
                    "that died leaves its address behind: `ray stop`, then `ray start --head`; or leave out "
                    "--address for a Ray of this command's own)")


def _head_listens(target: str, timeout_s: float) -> bool:
    """Whether anything accepts a TCP connection at the head's address within timeout_s. A dead
    head refuses at once, while ray.init retries it for half a minute in code a timer cannot
    interrupt. "auto" is the address in Ray's ray_current_cluster file (none: Ray says so itself)."""
    import socket
    import tempfile

    address = target.removeprefix("ray://")
    if address == "auto":
        pointer = Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        try:
            address = pointer.read_text().strip()
        except OSError:
            return True
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return True  # an address ray.init will judge, in its own words
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def _init_within(target: str, verbose: bool, timeout_s: float | None) -> None:
    """ray.init(target), given up after timeout_s: a timer interrupts the main thread, which Ray's
    connection loop lets through at its next retry."""
    import _thread
    import threading

    import ray

    gave_up, joined, lock = threading.Event(), threading.Event(), threading.Lock()

    def give_up() -> None:
        with lock:  # never interrupt once ray.init has returned
            if not joined.is_set():
                gave_up.set()
                _thread.interrupt_main()

    timer = threading.Timer(timeout_s, give_up) if timeout_s else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        ray.init(address=target, include_dashboard=False, logging_level="INFO" if verbose else "ERROR",
                 log_to_driver=verbose, ignore_reinit_error=True, configure_logging=True)
        with lock:
            joined.set()
    except KeyboardInterrupt:
        if not gave_up.is_set():
            raise
        raise _no_answer(target, timeout_s) from None
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise FerError(f"--address {target}: cannot join the Ray cluster ({str(e).splitlines()[0]})") from None
    finally:
        if timer:
            timer.cancel()


def _each_sweep(spaces: list, request: Request, datasets: dict):
    """Yield each sweep's outcome as it ends."""
    from search import storage as store
    from search.interrupt import received, restore_handlers
    from search.resources import settle_packing
    from search.sweep import experiment_path, run_sweep, settle_concurrency
    from search.trainable import train_fer

    packed = {space.name: settle_packing(space, datasets[request.data or space.data]) for space in spaces}
    why = {space.name: settle_concurrency(space) for space in spaces}  # every sweep fits before any starts
    for space in spaces:
        source = request.data or space.data
        s = space.settings
        if packed[space.name]:
            current().say(f"sweep {request.name}/{space.name}: {packed[space.name]}")
        epochs = f"{s.max_epochs} epochs max" if s.max_epochs else (
            "epochs to the time budget" if s.time_budget_s else f"{s.epochs_cap()} epochs")
        trials = f"{s.trials} trials" if s.trials else "trials as the budget allows"
        current().say(f"sweep {request.name}/{space.name}: {trials} of {space.family} on "
                      f"{source or 'synthetic faces'}, {epochs}, {s.max_concurrent} at a time ({why[space.name]})")
        try:
            grid = run_sweep(space, train_fer, request, faces=datasets[source])
        except Exception:
            if store.failure() is None:  # Tune reads the full storage's empty files when it ends
                raise
        finally:
            restore_handlers()
        if received():
            raise KeyboardInterrupt
        if store.failure():
            store.drop_partial_checkpoints(experiment_path(request.storage, request.name, space))
            raise StorageFailed(store.failure())
        table, failed = summarise(grid, space)
        budget = current().budget
        if budget:
            budget.finish()
        use = budget.use() if budget else None
        ended_before = request.resume and use is not None and use.training == 0 and use.starting == 0
        yield SweepOutcome(space.name, s.metric, table, failed, use, ended_before)


def summarise(grid, space) -> tuple[object | None, list[str]]:
    """(the sweep's trials as a DataFrame, best first, or None; one line per failed trial)."""
    import pandas as pd

    from search.results import dedupe_epochs, epochs_run

    metric, rows, failed = space.settings.metric, [], []
    for r in grid:
        h = dedupe_epochs(r.metrics_dataframe)
        trial_id = Path(r.path).name.removeprefix("trial_")
        epochs = epochs_run(h)
        status = "failed" if r.error else current().endings.get(trial_id) or _ended(r, space.settings.scheduler)
        if r.error:
            failed.append(f"trial {space.name}/{trial_id} failed after its retries: {_last_line(r.error)} "
                          f"(full text: {Path(r.path) / 'error.txt'})")
        train = (r.config or {}).get("train", {})  # None: a trial the deadline ended before it reported
        rows.append({"trial": trial_id, "status": status, "epochs": epochs,
                     metric: h[metric].max() if h is not None and metric in h else float("nan"),
                     "params": (r.metrics or {}).get("num_params"), "lr": train.get("lr"),
                     "optimizer": train.get("optimizer")})
    if not rows:
        return None, failed
    if not failed and all(row["epochs"] == 0 for row in rows):  # the budget ended every trial before an epoch
        budget = space.settings.time_budget_s
        failed.append(f"sweep {space.name}: no trial finished an epoch" + (
            f" within its {budget:g} s budget (a trial's start and first epoch need more: raise --time-budget-s)"
            if budget else ""))
    return pd.DataFrame(rows).astype({"params": "Int64"}).sort_values(metric, ascending=False), failed


def _ended(r, scheduler: str) -> str:
    """How a trial that ended before this process started ended: its own run's end, else
    "stopped" (by ASHA or the time budget: the printed line said which)."""
    from search.progress import outcome

    run_ends = (r.metrics or {}).get("run_ends") or ""
    return outcome(run_ends, False, scheduler=scheduler) if run_ends else "stopped"


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else error.__class__.__name__
