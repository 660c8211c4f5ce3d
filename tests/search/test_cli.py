"""`python -m search` on bad input: one line on stderr, exit 2, nothing written, Ray never started.
And the arithmetic behind the default concurrency and the trial outcomes."""

import pytest

from fer.errors import ConfigError, FerError
from search.budget import Budget
from search.cli import main
from search.plan import make_plan
from search.progress import outcome, rank_at
from search.resources import trials_at_once
from search.settings import Settings
from tests.factories import search_in_fresh_process, tiny_sweep


@pytest.mark.parametrize("flags, message", [
    (["--time-budget-s", "-5"], "argument --time-budget-s: must be a positive number, got '-5'"),
    (["--time-budget-s", "0"], "argument --time-budget-s: must be a positive number, got '0'"),
    (["--cpus-per-trial", "0"], "argument --cpus-per-trial: must be a positive number, got '0'"),
    (["--cpus-per-trial", "-1"], "argument --cpus-per-trial: must be a positive number, got '-1'"),
    (["--gpus-per-trial", "-0.5"], "argument --gpus-per-trial: must be a number >= 0"),
    (["--time-budget-s", "inf"], "argument --time-budget-s: must be a positive number, got 'inf'"),
    (["--name", "../x"], "--name: '../x' is not a name: letters, digits, '.', '_' and '-' only"),
    (["--name", ".."], "--name: '..' is not a name"),
    (["--rung-share", "nan"], "argument --rung-share: must be a number in (0, 1), got 'nan'"),
    (["--num-samples", "0"], "argument --num-samples: must be a positive integer, got '0'"),
    (["--max-epochs", "two"], "argument --max-epochs: must be a positive integer, got 'two'"),
    (["--max-concurrent", "0"], "argument --max-concurrent: must be a positive integer"),
    (["--explore-share", "1.5"], "argument --explore-share: must be a number in (0, 1], got '1.5'"),
    (["--grace-period", "9"], "settings.grace_period: 9 exceeds max_epochs 4"),
    (["configs/nope.yaml"], "configs/nope.yaml: no such config file"),
    (["configs"], "configs: cannot read it as a YAML config"),
    (["configs/cnn.yaml", "configs/cnn_gpu.yaml"], "two sweeps are named 'cnn'"),
    (["--data", "fer2013.csv.gzz"], "fer2013.csv.gzz: no such file or directory"),
    (["--storage-path", "README.md/results"], "--storage-path: cannot write under"),
    (["--storage-path", "nofs://bucket/results"], "nofs://bucket/results/quickstart/cnn: cannot be used"),
    (["--optuna-storage", "nodb://x/y"], "optuna storage nodb://x/y: cannot open it (Can't load plugin"),
    (["--optuna-storage", "postgresql://u:secret@127.0.0.1:1/db"],
     "--optuna-storage postgresql://u:***@127.0.0.1:1/db: a password in the URL would be recorded with the command "
     "line (Ray's job entrypoint, ps): give it in PGPASSWORD or ~/.pgpass (MySQL: ~/.my.cnf) and the URL without it, "
     "postgresql://u@127.0.0.1:1/db"),
    (["--warm-start-from", "postgresql://u@h/db?password=s/x"], "--warm-start-from postgresql://u@h/db?password=***:"),
    (["--optuna-storage", "postgresql://u@127.0.0.1:1/db"], "storage postgresql://u@127.0.0.1:1/db: cannot open"),
    (["--warm-start-from", "results/nowhere"], "--warm-start-from results/nowhere: no such folder"),
    (["--warm-start-from", "configs"], "--warm-start-from configs: no optuna.db inside"),
    (["--time-budget", "60"], "unrecognized arguments: --time-budget ("),  # a prefix of --time-budget-s is a typo
])
def test_bad_options_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, flags, message, ray_inits):
    storage = tmp_path / "results"
    assert _exit_code(["run", "--storage-path", str(storage), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not storage.exists() and not ray_inits  # refused before Ray started


@pytest.mark.parametrize("body, message", [
    ("train: {optimizer: {choice: [sgd, adamm]}}", "train.optimizer.choice[1] = 'adamm'"),
    ("model: {channels: {choice: [[8, 16], 32]}, kernel_sizes: [3]}", "model.channels.choice[1] = 32"),
    ("train: {optimizer: {choice: [sgd, adam]}, momentum: {uniform: [0.8, 0.9], when: {optimzer: sgd}}}",
     "train.momentum.when.optimzer: not a parameter of this space"),
    ("settings: {time_budget_s: .inf}", "settings.time_budget_s: must be a finite number, got inf"),
    ("name: ../x", "name: '../x' is not a name"),
    ("settings: {param_budget: {target: 0, scale: model.widths}}",
     "settings.param_budget: target: must be a positive number of parameters, got 0"),
])
def test_a_bad_space_is_refused_whole_before_ray_starts(tmp_path, capsys, body, message, ray_inits):
    space = tmp_path / "space.yaml"
    space.write_text(f"family: cnn\n{body}\n")
    assert main(["run", str(space), "--storage-path", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err == f"search: error: {space}: {message}" + err.split(message, 1)[1] and len(err.splitlines()) == 1
    assert not (tmp_path / "results").exists() and not ray_inits


def _exit_code(argv: list[str]) -> int:
    """main's return value, or argparse's exit status for options it refuses itself."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_a_second_run_under_the_same_name_is_refused(tmp_path, capsys):
    (tmp_path / "quickstart" / "cnn").mkdir(parents=True)
    (tmp_path / "quickstart" / "cnn" / "sweep.json").write_text("{}")
    assert main(["run", "--storage-path", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "an experiment named 'quickstart' is already there" in err and "--resume" in err and "--name" in err
    assert sorted(p.name for p in (tmp_path / "quickstart").iterdir()) == ["cnn"]  # nothing new written


def test_trials_at_once_counts_what_each_node_holds():
    nodes = [{"CPU": 8, "GPU": 2}, {"CPU": 4}]
    assert trials_at_once(1, 0, nodes) == 12
    assert trials_at_once(1, 0.5, nodes) == 4  # the GPU node holds 4 half-GPU trials, the CPU node none
    assert trials_at_once(3, 0.25, nodes) == 2  # 8 CPUs / 3
    assert trials_at_once(16, 0, nodes) == 0  # no node has 16 CPUs, though the cluster has 12


def test_concurrency_refuses_a_trial_no_node_holds(monkeypatch):
    import search.resources as resources

    monkeypatch.setattr(resources, "node_resources", lambda: [{"CPU": 2}])
    with pytest.raises(ConfigError, match=r"no node of the Ray cluster \(1 node, 2 CPUs\) can hold a trial of 4 CPUs"):
        resources.concurrency(4, 0, None)
    assert resources.concurrency(1, 0, None)[0] == 2
    assert resources.concurrency(1, 0, 1) == (1, "the cluster (1 node, 2 CPUs) holds 2 trials of 1 CPU; "
                                                  "max_concurrent caps it at 1")


def test_outcomes_name_who_ended_a_trial():
    epochs = make_plan(Settings(max_epochs=54, grace_period=6, reduction_factor=3), Budget(None))
    assert [epochs.rung_at(e) for e in (5, 6, 7, 18, 53)] == [None, 6, 6, 18, 18]
    assert rank_at({"a": 0.6, "b": 0.5}, "b") == (2, 2)
    assert outcome("epochs", False, epochs, 54) == "finished"
    assert outcome("time budget", False, epochs, 20) == "ended by its time budget"
    assert outcome("", False, epochs, 7, (2, 2)) == "stopped by ASHA (rung 6: rank 2 of 2)"
    assert outcome("", True, epochs, 9) == "stopped by the sweep's time budget"
    seconds = make_plan(Settings(grace_period=2), Budget(3600), epoch_s=60.0)  # rungs at 6, 18, 54 min of training
    assert outcome("", False, seconds, 1500.0, (3, 3)) == "stopped by ASHA (rung 18 min: rank 3 of 3)"
    assert outcome("", False, None, 7, scheduler="fifo") == "stopped"


def test_the_resume_line_names_the_study_server_without_a_password(tmp_path, monkeypatch, capsys):
    import search.cli

    monkeypatch.setattr(search.cli, "_study_checks", lambda *a: {})
    monkeypatch.setattr(search.cli, "_run_sweeps", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    monkeypatch.setenv("PGPASSWORD", "pa55-word")  # the documented way: never on the command line
    url = "postgresql://fer@db.example:5432/studies"
    assert main(["run", "--storage-path", str(tmp_path), "--optuna-storage", url]) == 130
    err = capsys.readouterr().err
    assert "pa55-word" not in err and f"--optuna-storage {url} --resume" in err


@pytest.mark.slow  # Ray's own connection wait
def test_a_cluster_that_does_not_answer_is_one_line(stale_ray_pointer, capsys, ray_inits):
    import time

    from search.engine import start_ray

    t0 = time.monotonic()
    with pytest.raises(FerError, match=r"--address auto: no Ray cluster answered within 2 s .*ray stop"):
        start_ray("auto", verbose=False, timeout_s=2)
    assert time.monotonic() - t0 < 15 and not ray_inits  # a dead head refuses at once: no 30 s of retries


def test_without_address_a_sweep_starts_its_own_ray(monkeypatch):
    from search.engine import ray_address

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address(None) == "local" and ray_address("auto") == "auto"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # as `ray job submit` runs a command
    assert ray_address(None) == "10.0.0.1:6379"


@pytest.mark.parametrize("flags, prepared, written", [([], True, True), (["--no-report"], False, False)])
def test_the_report_is_prepared_while_the_sweeps_run_and_written_after(tmp_path, monkeypatch, flags, prepared,
                                                                       written):
    """The main job's report hook: `prepare()` (its imports, in a thread) before the sweeps start,
    the report itself once they are over; neither with --no-report."""
    import search.engine

    calls = []

    class Report:
        def prepare(self):
            calls.append("prepare")

        def __call__(self, experiment, out, study_storage=None):
            calls.append("report")

    def sweeps(spaces, request, on_sweep=None, say=None):
        calls.append("sweeps")
        return search.engine.Outcome(f"{request.storage}/{request.name}", sweeps=[_sweep_outcome(epochs=2)])

    monkeypatch.setattr(search.engine, "run_experiment", sweeps)
    assert main(["run", "--storage-path", str(tmp_path), *flags], report=Report()) == 0
    assert calls == ["prepare"] * prepared + ["sweeps"] + ["report"] * written


@pytest.mark.parametrize("interrupted", [False, True])
def test_the_report_runs_while_ray_stops_and_the_command_waits_for_ray(tmp_path, monkeypatch, interrupted):
    """The engine stops the command's own Ray in a thread; the report starts meanwhile, and the
    command returns (a Ctrl-C in the report included) only once Ray has stopped."""
    import threading
    import time

    import search.engine

    stopped, seen = threading.Event(), []
    release = threading.Event()

    def stop_ray():  # Ray's shutdown: it ends a while after the report began
        release.wait(10)
        time.sleep(0.3)
        stopped.set()

    def sweeps(spaces, request, on_sweep=None, say=None):
        stopping = threading.Thread(target=stop_ray)
        stopping.start()
        return search.engine.Outcome(f"{request.storage}/{request.name}", sweeps=[_sweep_outcome(epochs=2)],
                                     stopping=stopping)

    def report(experiment, out, study_storage=None):
        seen.append(stopped.is_set())  # the report began before Ray had stopped
        release.set()
        if interrupted:
            raise KeyboardInterrupt

    monkeypatch.setattr(search.engine, "run_experiment", sweeps)
    assert main(["run", "--storage-path", str(tmp_path)], report=report) == (130 if interrupted else 0)
    assert seen == [False] and stopped.is_set()


def _sweep_outcome(epochs: int, failed=()):
    import pandas as pd

    from search.engine import SweepOutcome

    table = pd.DataFrame({"trial": ["a"], "status": ["stopped"], "epochs": [epochs],
                          "val_acc": [0.5 if epochs else None]})
    return SweepOutcome("cnn", "val_acc", table, list(failed), None)


def test_a_run_in_which_no_trial_finished_an_epoch_exits_1_and_reports_nothing(tmp_path, monkeypatch, capsys):
    import search.engine

    reported = []
    line = "sweep cnn: no trial finished an epoch within its 2 s budget"
    monkeypatch.setattr(search.engine, "run_experiment", lambda spaces, request, **kw: search.engine.Outcome(
        f"{request.storage}/{request.name}", sweeps=[_sweep_outcome(epochs=0, failed=[line])]))
    assert main(["run", "--storage-path", str(tmp_path)], report=lambda *a: reported.append(a)) == 1
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [f"search: {line}"] and not reported and "best models" not in out


def test_a_sweep_whose_trials_all_ended_before_an_epoch_says_so(sweep_context, tmp_path):
    import pandas as pd
    from ray.tune import Result

    from search.engine import summarise
    from search.space import load_sweeps
    from tests.factories import tiny_sweep

    path = tiny_sweep(tmp_path / "space.yaml")
    space = load_sweeps(str(path), {"time_budget_s": 2.0})[0]
    grid = [Result(metrics={}, checkpoint=None, error=None, path=str(tmp_path / f"trial_{t}")) for t in "ab"]
    table, failed = summarise(grid, space)
    assert list(table["epochs"]) == [0, 0]
    assert failed == ["sweep cnn: no trial finished an epoch within its 2 s budget (a trial's start and first "
                      "epoch need more: raise --time-budget-s)"]
    grid[0] = Result(metrics={}, checkpoint=None, error=None, path=str(tmp_path / "trial_a"),
                     metrics_dataframe=pd.DataFrame({"training_iteration": [1], "val_acc": [0.4]}))
    assert summarise(grid, space)[1] == []  # one trial with an epoch: a sweep like any other


def test_the_main_jobs_report_imports_the_analysis_stack_in_a_thread():
    import sys

    from search.__main__ import Report

    report = Report()
    report.prepare()
    report.importing.join(timeout=120)
    assert not report.importing.is_alive() and "analysis.report" in sys.modules


def test_the_reading_commands_parse_without_the_model_registry(tmp_path):
    """`search table` and `best` read files: the model registry (torch, 1.2 s) loads only when
    --family is given (test_results checks `table` on a real sweep, Ray Tune left out too)."""
    for command in ("table", "best"):  # (exit 2: an empty folder)
        assert search_in_fresh_process([command, str(tmp_path)], ("torch", "fer.models")) == (2, [False, False])


@pytest.mark.parametrize("command", ["pareto", "refit", "ensemble"])
def test_family_choices_are_the_registrys_searchable_families(command, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, str(tmp_path), "--family", "gan"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"python -m search {command}: error: argument --family: invalid choice: 'gan' "
                          "(choose from 'cnn', 'dnn'")
    assert err.count("'all'") == (command == "ensemble")


def test_the_interrupt_line_promises_saved_state_only_where_tune_saved_some(tmp_path):
    """A sweep stopped before Tune first wrote its state (its folder holds only what the sweep
    wrote itself) starts over when resumed: the line says so instead of "state is saved"."""
    from search.cli import _interrupted
    from search.space import load_sweeps

    cnn = load_sweeps(str(tiny_sweep(tmp_path / "space.yaml")))[0]
    storage, folder = str(tmp_path / "results"), tmp_path / "results" / "exp" / cnn.name
    assert _interrupted(storage, "exp", [cnn], "R").startswith("the sweeps' state is saved")  # never began
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text("{}")
    assert _interrupted(storage, "exp", [cnn], "R") == (
        f"sweep {cnn.name} stopped before its state was first saved, so a resume starts it over; continue with: R")
    (folder / "tuner.pkl").write_bytes(b"")  # what Tuner.can_restore looks for: Tune saved its state
    assert _interrupted(storage, "exp", [cnn], "R") == "the sweeps' state is saved; continue with: R"
