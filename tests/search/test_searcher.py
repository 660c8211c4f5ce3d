"""StudySearch without Ray: an epoch Tune logged twice (a retry reran it) counts once, its last run."""
import warnings

import optuna

from search.searcher import StudySearch
from search.space import load_sweeps
from tests.factories import tiny_sweep


def test_an_epoch_reported_twice_keeps_its_last_score_in_the_study(tmp_path, sweep_context):
    space = load_sweeps(str(tiny_sweep(tmp_path / "space.yaml")))[0]
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name="s", direction="maximize")
    search = StudySearch(space, sampler=optuna.samplers.RandomSampler(0), points=[], storage=storage,
                         study_name="s", trials_path=str(tmp_path))
    search.set_search_properties("val_acc", "max", {})
    search.suggest("t1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna's "already reported" warning is handled, not shown
        for epoch, value, ckpt in [(1, 0.3, None), (2, 0.9, None), (2, 0.5, "checkpoint_000001")]:
            search.on_trial_result("t1", {"training_iteration": epoch, "val_acc": value,
                                          **({"checkpoint_dir_name": ckpt} if ckpt else {})})
    last = {"training_iteration": 3, "val_acc": 0.4, "checkpoint_dir_name": "checkpoint_000002"}
    search.on_trial_complete("t1", last)
    (trial,) = optuna.load_study(study_name="s", storage=storage).trials
    assert trial.intermediate_values == {1: 0.3, 2: 0.5, 3: 0.4}
    assert trial.value == 0.5 and trial.user_attrs["checkpoint"].endswith("trial_t1/checkpoint_000001/checkpoint.pt")


def test_a_study_database_that_cannot_be_written_stops_the_sweep_as_a_full_storage(tmp_path, monkeypatch):
    """The disk fills between two storage checks and the study's next write fails: the sweep is
    stopped, resumable, with why (search.storage), and the driver does not fail."""
    import search.storage as store
    from search.context import SweepContext
    from search.storage import RESERVE_FILE

    context = SweepContext()
    space = load_sweeps(str(tiny_sweep(tmp_path / "space.yaml")))[0]
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name="s", direction="maximize")
    search = StudySearch(space, sampler=optuna.samplers.RandomSampler(0), points=[], storage=storage,
                         study_name="s", trials_path=str(tmp_path / "exp" / "cnn"))
    search.set_search_properties("val_acc", "max", {})
    search.suggest("t1")
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / RESERVE_FILE).write_bytes(b"0" * 1024)
    stopped = []
    monkeypatch.setattr(store, "stop_sweep", lambda: stopped.append(True))

    def full(*args, **kwargs):
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.")

    monkeypatch.setattr(storage, "set_trial_intermediate_value", full)
    with context.active():
        search.on_trial_result("t1", {"training_iteration": 1, "val_acc": 0.3})
    assert stopped == [True] and context.storage_failure.startswith("the study database cannot be written")
    assert not (tmp_path / "exp" / RESERVE_FILE).exists()  # the room kept for Tune's last save, given back


def test_a_resumed_trial_the_saved_searcher_never_suggested_is_told_to_the_study(tmp_path, sweep_context):
    """On s3:// a driver killed between Tune's uploads of its experiment state and its searcher's
    state resumes with a running trial the restored searcher never suggested: the searcher takes
    it up from the study (by tune_trial_id) instead of failing the sweep with a KeyError."""
    from search.limiter import make_searcher
    from search.study import open_storage

    space = load_sweeps(str(tiny_sweep(tmp_path / "space.yaml")))[0]
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(storage=open_storage(url), study_name="s", direction="maximize")

    def searcher():
        s = make_searcher(space, seed=0, storage=open_storage(url), study_name="s", trials_path=str(tmp_path))
        s.set_search_properties("val_acc", "max", {})
        return s

    before = searcher()
    before.suggest("t1")
    before.save_to_dir(str(tmp_path), session_str="a")  # the searcher state that reached the bucket
    before.suggest("t2")  # suggested after it: the experiment state that reached the bucket has it
    resumed = searcher()
    resumed.restore_from_dir(str(tmp_path))
    for trial_id in ("t2", "t1"):
        resumed.on_trial_result(trial_id, {"training_iteration": 1, "val_acc": 0.3})
        resumed.on_trial_result(trial_id, {"training_iteration": 2, "val_acc": 0.6})
        resumed.on_trial_complete(trial_id, {"training_iteration": 3, "val_acc": 0.4,
                                             "checkpoint_dir_name": "checkpoint_000001"})
    trials = {t.user_attrs["tune_trial_id"]: t for t in optuna.load_study(study_name="s", storage=url).trials}
    assert set(trials) == {"t1", "t2"}
    for t in trials.values():
        assert t.state == optuna.trial.TrialState.COMPLETE and t.value == 0.6  # its best epoch, as for any trial
        assert t.intermediate_values == {1: 0.3, 2: 0.6, 3: 0.4} and t.user_attrs["epochs"] == 3
    assert not resumed.live_trials  # the adopted trial counted as running until it ended


def test_a_trial_whose_last_epoch_came_without_its_checkpoint_completes_without_one(tmp_path):
    """Tune can stop a trial at the budget between its epoch's result and that epoch's checkpoint:
    finish_study completes it with its score and no checkpoint, instead of failing the sweep."""
    import pandas as pd
    from ray.tune import Result

    from search.study import finish_study, open_storage

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="s", direction="maximize")
    for tune_id in ("t1", "t2"):
        study.ask().set_user_attr("tune_trial_id", tune_id)
    history = pd.DataFrame({"training_iteration": [1], "val_acc": [0.3], "num_params": [10]})
    grid = [Result(metrics={"val_acc": 0.3}, checkpoint=None, error=None, path=str(tmp_path / "trial_t1"),
                   metrics_dataframe=history, best_checkpoints=[]),
            Result(metrics={}, checkpoint=None, error=None, path=str(tmp_path / "trial_t2"), best_checkpoints=[])]
    assert finish_study(open_storage(url), "s", grid, "val_acc") == (1, 1)
    t1, t2 = optuna.load_study(study_name="s", storage=url).trials
    assert t1.state == optuna.trial.TrialState.COMPLETE and t1.value == 0.3 and t1.user_attrs["epochs"] == 1
    assert "checkpoint" not in t1.user_attrs
    assert t2.state == optuna.trial.TrialState.FAIL  # no epoch at all
