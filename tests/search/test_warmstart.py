"""Warm starts: an earlier study's finished trials that fit the new space seed the new study,
the others are counted out by parameter, and the new sweep's budget counts only its own trials."""
import optuna
import pytest

from fer.errors import FerError
from search.cli import main
from search.results import trials_table
from search.space import load_sweeps
from search.warmstart import fitting_trials, import_plan, unseen_points
from tests.factories import tiny_sweep

D = optuna.distributions


def _source(tmp_path, family="cnn", metric="val_acc"):
    """An experiment folder holding one study made by hand: 4 finished trials, 1 failed."""
    folder = tmp_path / "old" / "cnn"
    folder.mkdir(parents=True)
    study = optuna.create_study(study_name="old/cnn", storage=f"sqlite:///{folder / 'optuna.db'}", direction="maximize")
    study.set_user_attr("family", family)
    study.set_user_attr("metric", metric)
    dists = {"model/channels": D.CategoricalDistribution(["[4, 8]", "[8, 8]", "[16, 16]"]),
             "train/lr": D.FloatDistribution(1e-4, 1e-1, log=True), "train/wd": D.FloatDistribution(0, 1)}
    points = [("[4, 8]", 0.01, 0.5), ("[8, 8]", 0.002, 0.1), ("[16, 16]", 0.01, 0.1), ("[16, 16]", 0.09, 0.2)]
    for k, (ch, lr, wd) in enumerate(points):
        study.add_trial(optuna.trial.create_trial(params={"model/channels": ch, "train/lr": lr, "train/wd": wd},
                                                  distributions=dists, value=0.1 * k, intermediate_values={1: 0.1},
                                                  user_attrs={"checkpoint": f"/old/trial_{k}/checkpoint.pt"}))
    study.add_trial(optuna.trial.create_trial(params={"train/lr": 0.01}, distributions={"train/lr": dists["train/lr"]},
                                              state=optuna.trial.TrialState.FAIL))
    return tmp_path / "old"


def _space(tmp_path):
    return load_sweeps(str(tiny_sweep(tmp_path / "space.yaml")))[0]  # channels [4, 8] | [8, 8]; lr in [1e-3, 3e-2]


def test_fitting_trials_are_imported_and_the_others_counted_by_parameter(tmp_path):
    trials, line = import_plan(str(_source(tmp_path)), None, _space(tmp_path))
    assert sorted(t.params["train/lr"] for t in trials) == [0.002, 0.01]  # the two whose values fit
    assert all(set(t.params) == {"model/channels", "train/lr"} for t in trials)  # train/wd: not searched here
    assert {t.user_attrs["source_trial"] for t in trials} == {0, 1} and trials[0].user_attrs["checkpoint"]
    assert line.endswith("2 of 4 finished trials imported; 2 left out (2 with model.channels outside this space, "
                         "1 with train.lr outside this space)")


def test_a_study_of_another_family_or_metric_is_refused(tmp_path):
    with pytest.raises(FerError, match="no study of family 'cnn' \\(studies: old/cnn \\(dnn\\)\\)"):
        import_plan(str(_source(tmp_path / "a", family="dnn")), None, _space(tmp_path))
    with pytest.raises(FerError, match="was scored by val_macro_f1, this sweep by val_acc"):
        import_plan(str(_source(tmp_path / "b", metric="val_macro_f1")), None, _space(tmp_path))
    with pytest.raises(FerError, match="--warm-start-study nope: not in"):
        import_plan(str(_source(tmp_path / "c")), "nope", _space(tmp_path))


def test_ranges_steps_and_choices_decide_what_fits():
    dists = {"a": D.IntDistribution(2, 10, step=2), "b": D.CategoricalDistribution(["x", "y"])}
    trial = lambda **p: optuna.trial.create_trial(params=p, distributions={  # noqa: E731
        "a": D.IntDistribution(1, 20), "b": D.CategoricalDistribution(["x", "y", "z"])}, value=0.0)
    kept, left_out = fitting_trials([trial(a=4, b="x"), trial(a=5, b="y"), trial(a=12, b="z")], dists)
    assert [t.params for t, _ in kept] == [{"a": 4, "b": "x"}] and left_out == {"a": 2, "b": 1}


def test_warm_start_points_an_imported_trial_measured_are_not_rerun():
    imported = [optuna.trial.create_trial(params={"lr": 0.01, "opt": "sgd"},
                                          distributions={"lr": D.FloatDistribution(0, 1),
                                                         "opt": D.CategoricalDistribution(["sgd", "adam"])}, value=0.5)]
    assert unseen_points([{"lr": 0.01, "opt": "sgd"}, {"lr": 0.01, "opt": "adam"}], imported) == [
        {"lr": 0.01, "opt": "adam"}]


@pytest.mark.slow
def test_a_sweep_warm_started_from_an_earlier_one(ray_cluster, tiny_csv, tmp_path, capsys):
    results = tmp_path / "results"
    first = tiny_sweep(tmp_path / "first.yaml", n=3, epochs=1)
    assert main(["run", str(first), "--data", str(tiny_csv), "--storage-path", str(results), "--name", "old",
                 "--no-report"]) == 0
    old = optuna.load_study(study_name="old/cnn", storage=f"sqlite:///{results / 'old' / 'cnn' / 'optuna.db'}")
    fit = sum(5e-3 <= t.params["train/lr"] for t in old.trials)
    second = tiny_sweep(tmp_path / "second.yaml", n=2, epochs=1)
    second.write_text(second.read_text().replace("loguniform: [1.0e-3, 3.0e-2]", "loguniform: [5.0e-3, 3.0e-2]"))
    capsys.readouterr()
    assert main(["run", str(second), "--data", str(tiny_csv), "--storage-path", str(results), "--name", "new",
                 "--warm-start-from", str(results / "old"), "--no-report"]) == 0
    out = capsys.readouterr().out
    line = f"sweep new/cnn: warm start from study old/cnn (sqlite:///{results / 'old' / 'cnn' / 'optuna.db'}): " \
           f"{fit} of 3 finished trials imported"
    assert line + (f"; {3 - fit} left out ({3 - fit} with train.lr outside this space)" if fit < 3 else "") in out
    new = optuna.load_study(study_name="new/cnn", storage=f"sqlite:///{results / 'new' / 'cnn' / 'optuna.db'}")
    imported = [t for t in new.trials if "imported_from" in t.user_attrs]
    assert len(imported) == fit and len(new.trials) == fit + 2  # num_samples counts only the new trials
    table = trials_table(results / "new")
    assert (table["status"] == "IMPORTED").sum() == fit and (table["status"] == "TERMINATED").sum() == 2
    assert table.loc[table["status"] == "IMPORTED", "checkpoint"].isna().all()
