"""The Tune searcher of a sweep: Optuna's, through Ray Tune's OptunaSearch, writing the study
that search.study keeps.

What Optuna is told about a trial differs from what Tune tells its searcher in one place. Tune
completes a trial with its *last* result, so a trial that ASHA stopped would be scored at the
rung where it fell behind. `StudySearch` tells Optuna the best score the trial reported instead;
the sweep keeps checkpoints with CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=
metric, order "max"), so that is the score of the one checkpoint Tune kept, and the
`checkpoint` user attribute names it. Every epoch's score is an intermediate value.
"""
from __future__ import annotations

import math
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import optuna
from ray.tune.search.optuna import OptunaSearch

from search.context import current
from search.progress import outcome
from search.uri import is_local, trial_folder


class _Capture:
    """The define-by-run function handed to OptunaSearch: the space's, noting each new trial's
    number. A plain object, not a method of the searcher: OptunaSearch pickles its attributes
    one by one, so a bound method would come back tied to a copy of the searcher."""

    def __init__(self, define):
        self.define, self.number = define, None

    def __call__(self, trial) -> dict:
        self.number = trial.number
        return self.define(trial)


class StudySearch(OptunaSearch):
    """OptunaSearch over a define-by-run space that links each Tune trial to its Optuna trial and
    completes it with its best epoch (see the module's docstring). User attributes: tune_trial_id,
    checkpoint, num_params, epochs, and stopped_by (how it ended, as the progress lines say it).

    Trials are reached through the storage's public interface (BaseStorage), by id: the objects
    OptunaSearch hands the space function are proxies that do not survive Tune's pickling.

    A resumed sweep can hold a trial that this searcher's saved state does not know: on s3://,
    Tune uploads its experiment state and the searcher's state separately, and a driver killed
    between the two leaves the searcher behind. Such a trial is adopted: its study trial is found
    by its tune_trial_id and told its epochs and end through the storage, not through OptunaSearch,
    which would fail on the unknown id."""

    KEPT = ("training_iteration", "checkpoint_dir_name", "num_params")

    def __init__(self, space, *, sampler, points: list[dict], storage, study_name: str, trials_path: str):
        self.capture, self.trials_path = _Capture(space.define_by_run), trials_path.rstrip("/")
        self.settings = space.settings
        self.storage = storage or optuna.storages.InMemoryStorage()
        self.linked: dict[str, int] = {}  # Tune trial id -> the storage's trial id
        self.epochs: dict[str, dict[int, dict]] = {}  # Tune trial id -> {epoch: a few keys of its result}
        self.adopted: dict[str, int | None] = {}  # Tune trial id -> the storage's trial id (None: not in the study)
        self.study_name = study_name
        super().__init__(space=self.capture, metric=space.settings.metric, mode="max", sampler=sampler,
                         points_to_evaluate=points or None, storage=self.storage, study_name=study_name)
        self.study_id = self.storage.get_study_id_from_name(study_name)

    def suggest(self, trial_id: str):
        self.capture.number = None
        config = super().suggest(trial_id)
        if self.capture.number is not None:  # a new Optuna trial was asked for this Tune trial
            linked = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, self.capture.number)
            self.storage.set_trial_user_attr(linked, "tune_trial_id", trial_id)
            self.linked[trial_id] = linked
        return config

    @contextmanager
    def _writing(self):
        """A study write: when the database in a local experiment folder cannot be written (the
        disk filled up between two storage checks), the sweep stops as for any full storage,
        resumable (search.storage), instead of failing the driver."""
        try:
            yield
        except optuna.exceptions.StorageInternalError as e:
            if not is_local(self.trials_path):
                raise
            from search.storage import stop_for_storage

            stop_for_storage(str(Path(self.trials_path).parent), f"the study database cannot be written "
                             f"({str(e.__cause__ or e).splitlines()[0]})")

    def adopt(self, trial_id: str) -> None:
        """Take up a running trial this searcher does not know (it did not suggest it, or has
        completed it): link it to the study trial that names it, if that is still running (one
        that finished stands, as in on_trial_result)."""
        if trial_id in self.linked or trial_id in self.adopted:
            return
        named = [t for t in self.storage.get_all_trials(self.study_id, deepcopy=False)
                 if t.user_attrs.get("tune_trial_id") == trial_id]
        running = [t.number for t in named if not t.state.is_finished()]
        self.adopted[trial_id] = (self.storage.get_trial_id_from_study_id_trial_number(self.study_id, running[-1])
                                  if running else None)
        if not named:
            print(f"search: trial {trial_id} resumed, but the study has no record of it; its epochs are kept by "
                  "Tune only", file=sys.stderr, flush=True)

    def _storage_id(self, trial_id: str) -> int | None:
        return self.linked.get(trial_id, self.adopted.get(trial_id))

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        with self._writing():
            self.adopt(trial_id)
            self._note(trial_id, result)
            if trial_id in self.adopted:
                return  # (_note has written its epoch)
            try:  # (no query per result: Optuna itself refuses a report to a trial it has finished)
                with warnings.catch_warnings():  # an epoch run twice: _note has stored its last score
                    warnings.filterwarnings("ignore", message="The reported value is ignored")
                    super().on_trial_result(trial_id, result)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # finished before a driver was killed, rerun by Tune from an older snapshot: it stands

    def _finished(self, linked: int | None) -> bool:
        """Whether the study has finished this trial already: completed before a driver was killed,
        after Tune's last snapshot, so the resumed Tune runs it again. Its record stands."""
        return linked is not None and self.storage.get_trial(linked).state.is_finished()

    def _note(self, trial_id: str, result: dict) -> None:
        """Keep each epoch's score, the last logged of an epoch run twice (a retry reran it: the
        first run's checkpoint was never registered), in the study too."""
        if self.metric not in result or "training_iteration" not in result or not math.isfinite(result[self.metric]):
            return  # (a diverged epoch's NaN is no score)
        step = result["training_iteration"]
        epochs = self.epochs.setdefault(trial_id, {})
        linked = self._storage_id(trial_id)
        if linked is not None and (step in epochs or trial_id in self.adopted):  # (Optuna keeps a step's first report)
            try:
                self.storage.set_trial_intermediate_value(linked, step, result[self.metric])
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # (see on_trial_result)
        epochs[step] = {k: result[k] for k in (self.metric, *self.KEPT) if k in result}

    def _best(self, trial_id: str) -> dict | None:
        epochs = self.epochs.pop(trial_id, {})
        return max(epochs.values(), key=lambda e: e[self.metric]) if epochs else None

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        with self._writing():
            self.adopt(trial_id)
            self._complete(trial_id, result, error)

    def _complete(self, trial_id: str, result: dict | None, error: bool) -> None:
        # Tune hands a trial's last result (its final epoch, or the one ASHA stopped it at) to this
        # method alone, not to on_trial_result: it is noted and reported here.
        adopted = trial_id in self.adopted
        linked = self.adopted.pop(trial_id) if adopted else self.linked.pop(trial_id, None)
        if self._finished(linked):
            linked = None
        if result and self.metric in result:
            self._note(trial_id, result)
            if linked is not None and "training_iteration" in result:
                self.storage.set_trial_intermediate_value(linked, result["training_iteration"], result[self.metric])
        best = self._best(trial_id)
        if linked is not None:
            for key, value in self._attrs(trial_id, result or {}, best or {}, error).items():
                self.storage.set_trial_user_attr(linked, key, value)
        if best is not None and result is not None and not error:
            result = {**result, self.metric: best[self.metric]}  # the kept checkpoint's score, not the last
        if not adopted:
            super().on_trial_complete(trial_id, result, error)
        elif linked is not None:  # as OptunaSearch tells a trial: no score is FAIL after an error, else PRUNED
            value = (result or {}).get(self.metric)
            state = (optuna.trial.TrialState.COMPLETE if value is not None else
                     optuna.trial.TrialState.FAIL if error else optuna.trial.TrialState.PRUNED)
            study = optuna.load_study(study_name=self.study_name, storage=self.storage)
            study.tell(self.storage.get_trial(linked).number, value, state=state)

    def _attrs(self, trial_id: str, last: dict, best: dict, error: bool) -> dict:
        epochs = last.get("training_iteration", best.get("training_iteration"))
        context = current()
        plan, budget = context.plan, context.budget
        stopped_by = "error" if error else context.endings.get(trial_id) or outcome(
            last.get("run_ends", ""), budget is not None and budget.over(), plan,
            last.get(plan.time_attr) if plan else None, None, self.settings.scheduler)
        out = {"epochs": epochs, "stopped_by": stopped_by, "num_params": best.get("num_params")}
        if best.get("checkpoint_dir_name"):
            folder = f"{self.trials_path}/{trial_folder(trial_id)}"
            out["checkpoint"] = f"{folder}/{best['checkpoint_dir_name']}/checkpoint.pt"
        return {k: v for k, v in out.items() if v is not None}
