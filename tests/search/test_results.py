"""search.results reads experiments from plain files: a tampered results folder runs nothing."""
import json
import pickle
import re
import shutil
from pathlib import Path

import pytest

from fer.config import load_run
from fer.run import train_run
from search.cli import main
from search.results import best_trials, dedupe_epochs, epochs_run, read_history, trial_histories, trials_table
from tests.factories import search_in_fresh_process


class Bomb:
    """Unpickling it creates `marker`: a stand-in for any code a tampered pickle would run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    run = load_run(None, ["model.name=cnn", "model.channels=[4,8]", "model.kernel_sizes=[3]", "model.head=gap",
                          "model.head_hidden=[]", "model.pool=max", "train.epochs=1", "train.batch_size=64"])
    train_run(run, out)
    return out / "checkpoint.pt"


def write_experiment(exp: Path, checkpoint: Path, marker: Path) -> Path:
    """A results folder as a sweep leaves it, every pickle in it (Tune's hex-pickled state fields,
    tuner.pkl, searcher state, params.pkl) replaced by a Bomb. Trial a logged epoch 2 twice (a
    retry after a lost node): the second row, 0.5, is the one it went on from."""
    bomb = pickle.dumps(Bomb(marker))
    pickled = {"_type": "CLOUDPICKLE_FALLBACK", "value": bomb.hex()}
    exp.mkdir(parents=True)
    (exp / "sweep.json").write_text(json.dumps({"family": "cnn", "name": "cnn", "metric": "val_acc",
                                                "searched": ["train/lr"]}))
    (exp / "tuner.pkl").write_bytes(bomb)
    (exp / "searcher-state-2026-01-01_00-00-00.pkl").write_bytes(bomb)
    epochs = {"a": [(1, 0.3, None), (2, 0.9, None), (2, 0.5, "checkpoint_000001"), (3, 0.4, "checkpoint_000002")],
              "b": [(1, 0.45, "checkpoint_000000")]}
    trial_data = []
    for trial_id, rows in epochs.items():
        folder = exp / f"trial_{trial_id}"
        folder.mkdir()
        (folder / "params.pkl").write_bytes(bomb)
        lines = [json.dumps({"training_iteration": i, "val_acc": v, "num_params": 100, "epoch_s": 1.0,
                             "config": {"train": {"lr": 0.01}}, **({"checkpoint_dir_name": c} if c else {})})
                 for i, v, c in rows]
        (folder / "result.json").write_text("\n".join(lines) + '\n{"training_iteration": 4, "val_ac')  # cut short
        for _, _, c in rows:
            if c:
                (folder / c).mkdir()
                shutil.copy(checkpoint, folder / c / "checkpoint.pt")
        state = {"trial_id": trial_id, "status": "TERMINATED", "config": {"train": {"lr": 0.01}},
                 "relative_logdir": f"trial_{trial_id}", "storage": pickled}
        trial_data.append([json.dumps(state), json.dumps({"checkpoint_manager": pickled})])
    (exp / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": trial_data}))
    return exp


@pytest.fixture
def tampered(tmp_path, checkpoint):
    marker = tmp_path / "ran"
    return write_experiment(tmp_path / "results" / "exp" / "cnn", checkpoint, marker), marker


def test_reading_a_tampered_experiment_runs_none_of_its_pickles(tampered, capsys):
    exp, marker = tampered
    assert main(["best", str(exp.parent)]) == 0
    assert main(["table", str(exp.parent)]) == 0
    assert not marker.exists()
    out = capsys.readouterr().out
    assert "cnn: val_acc 0.5000" in out and "trial_a/checkpoint_000001/checkpoint.pt" in out


def test_a_trial_resumed_from_a_newer_checkpoint_keeps_every_epoch_it_logged():
    """Resumed from a checkpoint newer than the one Tune recorded (epoch 3 where Tune had epoch 2),
    the trial logs epoch 4 as Tune's iteration 3: fer's epoch, not Tune's count, tells the rows apart."""
    import pandas as pd

    logged = ((1, 1), (2, 2), (3, 3), (3, 4), (4, 5))  # (Tune's iteration, fer's epoch)
    rows = [{"training_iteration": i, "epoch": e, "val_acc": 0.1 * e} for i, e in logged]
    history = dedupe_epochs(pd.DataFrame(rows))
    assert history["epoch"].tolist() == [1, 2, 3, 4, 5] and epochs_run(history) == 5
    rerun = pd.DataFrame(rows[:3] + [{"training_iteration": 3, "epoch": 3, "val_acc": 0.2}])  # a boundary epoch again
    assert dedupe_epochs(rerun)["val_acc"].tolist() == [0.1, 0.2, 0.2] and epochs_run(dedupe_epochs(rerun)) == 3
    plain = pd.DataFrame([{"training_iteration": i, "val_acc": 0.1} for i in (1, 2, 2)])  # no epoch: Tune's count
    assert len(dedupe_epochs(plain)) == 2 and epochs_run(plain) == 2 and epochs_run(None) == 0


def test_an_epoch_logged_twice_is_one_row_the_last(tampered):
    exp, _ = tampered
    history = read_history(exp / "trial_a")
    assert list(history["training_iteration"]) == [1, 2, 3] and list(history["val_acc"]) == [0.3, 0.5, 0.4]
    table = trials_table(exp)
    assert table.set_index("trial_id").loc["a", "val_acc"] == 0.5  # never the 0.9 that was rolled back
    (best,) = best_trials(exp)
    assert best["value"] == 0.5 and best["checkpoint"].endswith("trial_a/checkpoint_000001/checkpoint.pt")
    _, histories = trial_histories(exp)
    assert {k: len(v) for k, v in histories.items()} == {"a": 3, "b": 1}


@pytest.mark.parametrize("folder", ["../a", "..", "trial_link"])
def test_a_trial_folder_outside_the_experiment_is_refused(tampered, capsys, tmp_path, folder):
    """A path, the parent itself, or a trial folder that is a symlink out of the experiment."""
    exp, _ = tampered
    outside = tmp_path / "outside"
    shutil.copytree(exp / "trial_a", outside)
    (exp / "trial_link").symlink_to(outside)
    state = next(exp.glob("experiment_state-*.json"))
    state.write_text(state.read_text().replace('"relative_logdir\\": \\"trial_a', f'"relative_logdir\\": \\"{folder}'))
    assert main(["table", str(exp)]) == 2 and main(["pareto", str(exp)]) == 2
    err = capsys.readouterr().err
    assert "cannot read Tune's experiment state" in err and "is not a trial folder of the experiment" in err
    assert not (outside / "checkpoint_000001" / "cost.json").exists()  # nothing written out there


@pytest.mark.slow  # the whole report
def test_the_report_of_a_tampered_experiment_runs_none_of_its_pickles(tampered, tmp_path):
    from analysis.cli import main as analysis_main

    exp, marker = tampered
    assert analysis_main(["report", str(exp.parent), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "report.html").exists() and not marker.exists()


@pytest.mark.slow  # an in-process Ray
def test_a_real_sweep_with_its_pickles_replaced_is_read_without_running_them(ray_cluster, faces, tmp_path):
    from search.request import Request
    from search.space import load_sweeps
    from search.sweep import run_sweep
    from search.trainable import train_fer
    from tests.factories import tiny_sweep

    space = load_sweeps(str(tiny_sweep(tmp_path / "space.yaml", n=2, epochs=1)))[0]
    run_sweep(space, train_fer, Request("exp", str(tmp_path / "results")), faces=faces)
    exp, marker = tmp_path / "results" / "exp" / "cnn", tmp_path / "ran"
    bomb = pickle.dumps(Bomb(marker))
    state = next(exp.glob("experiment_state-*.json"))
    text = state.read_text()
    for hexed in set(re.findall(r'\\"value\\": \\"([0-9a-f]+)\\"', text)):  # Tune's hex-pickled fields
        text = text.replace(hexed, bomb.hex())
    state.write_text(text)
    for pkl in exp.rglob("*.pkl"):
        pkl.write_bytes(bomb)
    codes = main(["best", str(exp)]), main(["table", str(exp)])
    assert not marker.exists()
    assert codes == (0, 0)
    assert search_in_fresh_process(["table", str(exp)], ("torch", "ray.tune")) == (0, [False, False])  # loads neither


def _name_a_study(exp: Path, url: str) -> None:
    info = json.loads((exp / "sweep.json").read_text())
    (exp / "sweep.json").write_text(json.dumps({**info, "optuna_storage": url, "study_name": "exp/cnn"}))


def test_a_server_the_results_folder_names_is_never_contacted(tampered, monkeypatch, capsys):
    """sweep.json naming a PostgreSQL server (a port this test listens on): reading the folder
    connects nowhere, so the user's PGPASSWORD cannot leave; the table says how to name the server."""
    import socket

    exp, _ = tampered
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    _name_a_study(exp, f"postgresql://fer@127.0.0.1:{port}/studies")
    monkeypatch.setenv("PGPASSWORD", "pg-never-sent")
    assert main(["table", str(exp)]) == 0
    assert main(["pareto", str(exp)]) == 0
    assert main(["ensemble", str(exp), "--size", "2", "--out", str(exp.parent / "ens")]) == 0
    with pytest.raises(TimeoutError):  # (socket.timeout) nothing connected
        listener.accept()
    listener.close()
    err = capsys.readouterr().err
    assert f"its study is on postgresql://fer@127.0.0.1:{port}/studies, not opened" in err
    assert "give --optuna-storage URL to read it" in err


def test_an_sqlite_url_the_folder_names_creates_no_file(tampered, tmp_path):
    exp, _ = tampered
    target = tmp_path / "elsewhere" / "planted.db"
    target.parent.mkdir()
    _name_a_study(exp, f"sqlite:///{target}")
    assert main(["table", str(exp)]) == 0 and len(trials_table(exp)) == 2
    assert not target.exists()


def test_the_sweeps_own_study_is_read_without_a_write(tampered):
    """optuna.db inside the folder is opened read-only: not a byte or a journal file changes."""
    import optuna

    from search.results import load_study

    exp, _ = tampered
    _name_a_study(exp, "postgresql://fer@203.0.113.1:5432/never")  # ignored: the folder has its own
    study = optuna.create_study(storage=f"sqlite:///{exp / 'optuna.db'}", study_name="exp/cnn")
    study.add_trial(optuna.trial.create_trial(params={"x": 1.0}, distributions={
        "x": optuna.distributions.FloatDistribution(0, 2)}, value=0.5))
    del study
    before = {p.name: p.read_bytes() for p in exp.iterdir() if p.is_file()}
    loaded = load_study(exp)
    assert loaded is not None and len(loaded.trials) == 1
    assert {p.name: p.read_bytes() for p in exp.iterdir() if p.is_file()} == before
