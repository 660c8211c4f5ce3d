"""The sweep's Optuna study in a database (SQLite in the experiment folder, or PostgreSQL):
one Optuna trial per Tune trial, valued at the kept checkpoint's epoch, intermediate values
per epoch, and the user attributes that link it back to Tune; optuna-dashboard serves it."""
import json
import subprocess
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from search.request import Request
from search.results import STUDY_FILE
from search.space import load_sweeps
from search.sweep import run_sweep
from tests.factories import tiny_sweep
from tests.search.conftest import free_port
from tests.search.trainables import CURVE, endless_train, scripted_train

pytestmark = pytest.mark.slow  # an in-process Ray


def _scripted_sweep(tmp_path, faces, optuna_storage=None):
    path = tiny_sweep(tmp_path / "space.yaml", n=5, epochs=len(CURVE), conc=1)
    space = load_sweeps(str(path), {"grace_period": 3})[0]  # rungs at epochs 3 and 9: past the peak
    grid = run_sweep(space, scripted_train, Request("exp", str(tmp_path / "results"), optuna_storage=optuna_storage),
                     faces=faces)
    return space, grid


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_study_holds_each_trial_at_its_kept_checkpoint(ray_cluster, faces, tmp_path, backend, request):
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    _, grid = _scripted_sweep(tmp_path, faces, url)
    url = url or f"sqlite:///{tmp_path / 'results' / 'exp' / 'cnn' / STUDY_FILE}"
    study = optuna.load_study(study_name="exp/cnn", storage=url)
    assert study.user_attrs == {"family": "cnn", "metric": "val_acc"}
    by_tune = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    assert len(study.trials) == len(by_tune) == len(grid) == 5  # one Optuna trial per Tune trial
    stopped = 0
    for r in grid:
        t = by_tune[Path(r.path).name.removeprefix("trial_")]
        h = r.metrics_dataframe
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert t.intermediate_values == dict(zip(h["training_iteration"], h["val_acc"]))
        assert t.value == h["val_acc"].max() != h["val_acc"].iloc[-1]  # the best epoch, not the last
        kept = r.get_best_checkpoint("val_acc", "max")
        assert Path(t.user_attrs["checkpoint"]) == Path(kept.path) / "checkpoint.pt"
        assert Path(t.user_attrs["checkpoint"]).read_text() == "2"  # CURVE's best epoch
        assert t.user_attrs["num_params"] == 1234 and t.user_attrs["epochs"] == len(h)
        if len(h) < len(CURVE):
            stopped += 1
            assert t.user_attrs["stopped_by"].startswith("stopped by ASHA")
        else:
            assert t.user_attrs["stopped_by"] == "finished"
    assert stopped  # ASHA stopped at least one trial, and it too is valued at its best epoch
    _dashboard_serves(url, by_tune)


def _dashboard_serves(url: str, by_tune: dict) -> None:
    """optuna-dashboard on 127.0.0.1 lists the study and serves its trials as the database holds them."""
    port = free_port()
    dash = subprocess.Popen(["optuna-dashboard", url, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        api = f"http://127.0.0.1:{port}/api/studies"
        for _ in range(150):
            try:
                studies = json.load(urllib.request.urlopen(api, timeout=5))["study_summaries"]
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("optuna-dashboard did not answer")
        study_id = next(s["study_id"] for s in studies if s["study_name"] == "exp/cnn")
        trials = json.load(urllib.request.urlopen(f"{api}/{study_id}?after=0", timeout=30))["trials"]
        served = {next(a["value"] for a in t["user_attrs"] if a["key"] == "tune_trial_id"): t for t in trials}
        assert served.keys() == by_tune.keys()
        for tune_id, t in served.items():
            assert t["values"] == [by_tune[tune_id].value]
            assert {v["step"]: v["value"] for v in t["intermediate_values"]} == by_tune[tune_id].intermediate_values
    finally:
        dash.terminate()
        dash.wait(timeout=30)


def test_trials_tune_stops_at_its_time_budget_enter_the_study_complete(ray_cluster, faces, tmp_path):
    """Tune stops the trials still running at time_budget_s without telling its searcher; the
    sweep's end completes them with their best epoch."""
    space = load_sweeps(str(tiny_sweep(tmp_path / "space.yaml", n=2, epochs=100_000, sched="fifo")),
                        {"time_budget_s": 16.0})[0]  # room for a worker's start on a loaded machine
    grid = run_sweep(space, endless_train, Request("exp", str(tmp_path / "results")), faces=faces)
    study = optuna.load_study(study_name="exp/cnn", storage=f"sqlite:///{tmp_path}/results/exp/cnn/{STUDY_FILE}")
    assert len(study.trials) == len(grid) == 2
    for t in study.trials:
        h = next(r.metrics_dataframe for r in grid if r.path.endswith(t.user_attrs["tune_trial_id"]))
        assert t.state == optuna.trial.TrialState.COMPLETE and t.value == 1.0  # epoch 2's, not the last
        assert t.user_attrs["stopped_by"] == "stopped by the sweep's time budget"
        assert Path(t.user_attrs["checkpoint"]).read_text() == "2" and len(t.intermediate_values) == len(h)
