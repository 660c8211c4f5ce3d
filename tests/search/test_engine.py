"""search.engine without Ray: where it connects, and how a finished sweep is summarised."""
from types import SimpleNamespace

import pandas as pd

from search.engine import ray_address, summarise
from search.space import load_sweeps
from tests.factories import tiny_sweep


def test_ray_is_joined_where_asked_else_a_ray_of_its_own_never_a_stale_pointer(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address(None) == "local"  # never None: that would follow ray_current_cluster to a dead head
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")  # as `ray job submit` sets it
    assert ray_address(None) == "10.0.0.5:6379" and ray_address("ray://head:10001") == "ray://head:10001"


def test_a_sweeps_summary_ranks_its_trials_and_names_each_failure(tmp_path, sweep_context):
    space = load_sweeps(str(tiny_sweep(tmp_path / "space.yaml")))[0]
    history = pd.DataFrame({"training_iteration": [1, 2, 2], "val_acc": [0.3, 0.5, 0.5]})  # epoch 2 logged twice
    ok = SimpleNamespace(path=str(tmp_path / "trial_aaa"), error=None, metrics_dataframe=history,
                         metrics={"num_params": 1234, "run_ends": "epochs"}, config={"train": {"lr": 0.01}})
    bad = SimpleNamespace(path=str(tmp_path / "trial_bbb"), error=RuntimeError("boom\nValueError: bad shape"),
                          metrics_dataframe=None, metrics={}, config={"train": {"lr": 0.1}})
    sweep_context.endings["aaa"] = "stopped by ASHA (rung 1: rank 2 of 2)"
    table, failed = summarise([bad, ok], space)
    assert table["trial"].tolist() == ["aaa", "bbb"] and table["epochs"].tolist() == [2, 0]
    assert table["status"].tolist() == ["stopped by ASHA (rung 1: rank 2 of 2)", "failed"]
    assert failed == [f"trial cnn/bbb failed after its retries: ValueError: bad shape "
                      f"(full text: {tmp_path / 'trial_bbb' / 'error.txt'})"]


def test_a_trial_the_deadline_ended_before_it_reported_is_a_row_not_a_crash(tmp_path, sweep_context):
    """Tune gives such a trial no config and no metrics (a tiny --time-budget-s on the main job)."""
    space = load_sweeps(str(tiny_sweep(tmp_path / "space.yaml")))[0]
    silent = SimpleNamespace(path=str(tmp_path / "trial_ccc"), error=None, metrics_dataframe=None, metrics=None,
                             config=None)
    table, failed = summarise([silent], space)
    assert table["trial"].tolist() == ["ccc"] and table["epochs"].tolist() == [0]
    assert failed == ["sweep cnn: no trial finished an epoch"]  # its only trial: the sweep trained nothing
    assert table["lr"].isna().all() and table["optimizer"].isna().all()
