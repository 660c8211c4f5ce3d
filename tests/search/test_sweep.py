"""Sweeps on an in-process Ray with 2 CPUs and 1 logical GPU."""
import time
from pathlib import Path

import pytest
from ray import tune

from fer.checkpoint import load_checkpoint
from search.request import Request
from search.results import best_trials, trial_histories, trials_table
from search.space import load_sweeps
from search.sweep import run_sweep
from search.trainable import train_fer
from tests.factories import tiny_sweep
from tests.search.trainables import sleeping_trial

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # an in-process Ray


def _sweep(tmp_path, trainable, faces, extra=None, **kw):
    space = load_sweeps(str(tiny_sweep(tmp_path / "space.yaml", **kw)))[0]
    grid = run_sweep(space, trainable, Request("exp", str(tmp_path / "results")), faces=faces, **(extra or {}))
    return space, grid


def test_smoke_sweep_best_checkpoint_table_and_tensorboard(ray_cluster, faces, tmp_path):
    """(Also: `tensorboard --logdir results/<name>` shows each trial's per-epoch metrics, README.)"""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    space, grid = _sweep(tmp_path, train_fer, faces, n=6, epochs=3)
    assert len(grid) == 6 and not grid.errors
    assert max(len(r.metrics_dataframe) for r in grid) == 3
    table = trials_table(tmp_path / "results")
    assert len(table) == 6 and set(table["status"]) == {"TERMINATED"}
    (best,) = best_trials(tmp_path / "results")
    assert best["family"] == "cnn" and best["value"] == pytest.approx(table["val_acc"].max())
    payload = load_checkpoint(best["checkpoint"])  # fer reads the checkpoint alone
    assert max(m["val_acc"] for m in payload["history"]) == pytest.approx(best["value"])
    assert set(best["params"]) == {"model.channels", "train.lr"}
    _, histories = trial_histories(tmp_path / "results" / "exp" / "cnn")
    assert len(histories) == 6
    for trial_id, history in histories.items():  # every epoch of every trial, stopped early or not
        events = EventAccumulator(str(tmp_path / "results" / "exp" / "cnn" / f"trial_{trial_id}"))
        events.Reload()
        for metric in ("val_acc", "val_macro_f1", "train_loss"):
            scalars = events.Scalars(f"ray/tune/{metric}")
            assert [e.step for e in scalars] == history["training_iteration"].tolist()
            assert [e.value for e in scalars] == pytest.approx(history[metric].tolist())


def flaky_train(config, faces, flaky_dir, **params):
    """Fails once per trial, right after its second reported epoch."""
    marker = Path(flaky_dir) / tune.get_context().get_trial_id()

    def report(metrics, checkpoint=None):
        tune.report(metrics, checkpoint=checkpoint)
        if metrics["epoch"] == 2 and not marker.exists():
            marker.touch()
            raise RuntimeError("injected failure")

    train_fer(config, faces, report=report)


def test_failed_trials_are_retried_from_their_checkpoint(ray_cluster, faces, tmp_path):
    flaky = tmp_path / "flaky"
    flaky.mkdir()
    _, grid = _sweep(tmp_path, flaky_train, faces, {"flaky_dir": str(flaky)}, n=2, epochs=4, sched="fifo")
    assert not grid.errors and len(list(flaky.iterdir())) == 2  # each trial failed once, then finished
    _, histories = trial_histories(tmp_path / "results" / "exp" / "cnn")
    for h in histories.values():
        epochs = h["epoch"].tolist()
        assert epochs == [1, 2, 3, 4]  # resumed at epoch 3 from the checkpoint, not restarted


def diverging_train(config, faces, **params):
    """fer's trainable, its loss NaN from the second epoch on (as a far too high lr leaves it)."""
    import fer.train

    real = fer.train.Trainer.train_epoch

    def train_epoch(self):
        metrics = real(self)
        return {**metrics, "train_loss": float("nan")} if self.epoch >= 1 else metrics
    fer.train.Trainer.train_epoch = train_epoch
    train_fer(config, faces)


def test_a_diverged_trial_stops_with_its_last_good_epoch_kept(ray_cluster, faces, tmp_path, capsys):
    _, grid = _sweep(tmp_path, diverging_train, faces, n=1, epochs=4, sched="fifo")
    assert not grid.errors and grid[0].metrics["run_ends"] == "divergence"
    (best,) = best_trials(tmp_path / "results")
    assert best["checkpoint"].endswith("checkpoint_000000/checkpoint.pt")  # epoch 1's: the NaN one has none
    payload = load_checkpoint(best["checkpoint"])
    assert payload["best_epoch"] == 1
    assert "stopped: its training loss went NaN (diverged" in capsys.readouterr().out


def packed_train(config, faces, barrier_dir, **params):
    """Wait until four trials run at once (each holding a quarter of the one GPU)."""
    barrier = Path(barrier_dir)
    (barrier / tune.get_context().get_trial_id()).touch()
    deadline = time.time() + 60
    while len(list(barrier.iterdir())) < 4 and time.time() < deadline:
        time.sleep(0.2)
    assert len(list(barrier.iterdir())) >= 4, "four 0.25-GPU trials did not run together"
    train_fer(config, faces)


def test_fractional_gpus_pack_four_trials(ray_cluster, faces, tmp_path):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    _, grid = _sweep(tmp_path, packed_train, faces, {"barrier_dir": str(barrier)}, n=4, epochs=1, conc=4,
                     cpus=0.5, gpus=0.25)
    assert not grid.errors and len(grid) == 4
    assert {r.metrics["gpu_ids"] for r in grid} == {"0"}  # every trial was given logical GPU 0


def test_gpus_per_trial_auto_is_settled_on_a_gpu_node_before_the_sweep(ray_cluster, faces, tmp_path):
    """On Ray's logical GPU (no CUDA here) the measuring task still lands on the GPU node and says
    it had nothing to measure: one trial per GPU, the node's 2 CPUs per GPU to each trial; the
    sweep then schedules trials of 1 GPU, one at a time."""
    from search.resources import settle_packing

    path = tiny_sweep(tmp_path / "space.yaml", n=2, epochs=1, conc=None, sched="fifo")
    path.write_text(path.read_text().replace("gpus_per_trial: 0", "gpus_per_trial: auto")
                    .replace("max_concurrent: None,", ""))
    space = load_sweeps(str(path))[0]
    assert space.settings.gpus_per_trial == "auto"
    line = settle_packing(space, faces)
    assert line == ("gpus_per_trial auto: 1 trial per GPU (no CUDA device); 1 GPU and 2 CPUs per trial (the GPU "
                    "nodes have 2 CPUs per GPU)")
    assert (space.settings.gpus_per_trial, space.settings.cpus_per_trial) == (1.0, 2.0)
    grid = run_sweep(space, train_fer, Request("exp", str(tmp_path / "results")), faces=faces)
    assert not grid.errors and {r.metrics["gpu_ids"] for r in grid} == {"0"}
    assert space.settings.max_concurrent == 1  # the one logical GPU holds one trial


def test_resume_continues_a_study_that_tune_never_saved_state_for(ray_cluster, faces, tmp_path):
    """A driver killed after creating the study, before Tune's first snapshot: --resume reuses it."""
    from search.study import default_url, prepare_study
    from search.sweep import experiment_path, study_name

    space = load_sweeps(str(tiny_sweep(tmp_path / "space.yaml", n=2, epochs=1, sched="fifo")))[0]
    path = experiment_path(str(tmp_path / "results"), "exp", space)
    prepare_study(default_url(path), study_name("exp", space), space, resume=False)
    grid = run_sweep(space, train_fer, Request("exp", str(tmp_path / "results"), resume=True), faces=faces)
    assert len(grid) == 2 and not grid.errors
    assert len(trials_table(tmp_path / "results")) == 2


def test_time_budget_bounds_the_sweep_and_every_trial(ray_cluster, faces, tmp_path):
    budget = 20.0  # room for cold trial workers (torch import) to report a few epochs
    epochs = 10_000  # far more than any budget allows: a fast CPU runs ~20 tiny epochs/s
    space = load_sweeps(str(tiny_sweep(tmp_path / "space.yaml", n=50, epochs=epochs)), {"time_budget_s": budget})[0]
    grid = run_sweep(space, train_fer, Request("exp", str(tmp_path / "results")), faces=faces)
    assert not grid.errors and len(grid) < 50  # the limiter stopped starting trials
    # read as every reading command reads it, from the files (Tune's own Result can miss the
    # checkpoint of an epoch reported in the deadline's last moment, though it is on disk)
    table = trials_table(tmp_path / "results")
    assert len(table) == len(grid) and (table["epochs"] > 0).any()
    for _, row in table.iterrows():
        if row["epochs"] == 0:  # started in the last seconds: its worker was still starting at the deadline
            continue
        assert row["checkpoint"], row  # every trial that reported an epoch has its checkpoint on disk
        payload = load_checkpoint(Path(row["checkpoint"]))
        own = payload["train_config"]["time_budget_s"]
        assert 0 < own <= budget and payload["history"][-1]["elapsed_s"] <= own
        assert len(payload["history"]) < epochs  # cut by its budget, not its epochs


class _LeaveAfterOneEpoch(Exception):
    pass


def short_first_train(config, faces, **params):
    """The first trial (lr 3e-2, the warm start) leaves after one epoch, a second after it (the
    window for new trials, counted from the first epoch, has closed by then). The other leaves
    after its first epoch on two CPUs: the sweep ends once the growth is shown, however slowly a
    loaded machine starts the workers (the budget only bounds a sweep in which it never grows)."""
    first = config["train"]["lr"] == 3.0e-2

    def report(metrics, checkpoint=None):
        tune.report(metrics, checkpoint=checkpoint)
        if first:
            time.sleep(1.0)
        if first or metrics["threads"] >= 2:
            raise _LeaveAfterOneEpoch  # ends the trial's function: it completes

    try:
        train_fer(config, faces, report=report, **params)
    except _LeaveAfterOneEpoch:
        pass


def test_survivors_take_up_freed_cpus_once_no_trial_starts(ray_cluster, faces, tmp_path):
    path = tiny_sweep(tmp_path / "space.yaml", n=20, epochs=10_000, sched="fifo")
    path.write_text(path.read_text().replace("settings: {", "settings: {warm_start: [{train: {lr: 3.0e-2}}], "))
    space = load_sweeps(str(path), {"time_budget_s": 180.0, "explore_share": 0.002})[0]
    grid = run_sweep(space, short_first_train, Request("exp", str(tmp_path / "results")), faces=faces)
    assert not grid.errors and len(grid) == 2  # the window closed before a third trial could start
    survivor = max(grid, key=lambda r: len(r.metrics_dataframe))
    df = survivor.metrics_dataframe
    assert df["threads"].iloc[0] == 1 and df["threads"].iloc[-1] == 2  # restarted with the freed CPU
    assert df["epoch"].tolist() == list(range(1, len(df) + 1))  # continued from its checkpoint


def test_a_slow_then_fast_machine_spends_the_whole_budget(ray_cluster, tmp_path):
    """No max_epochs, no epoch time known in advance: the plan's rungs are shares of the budget, new
    trials start in its window, then the survivors take the freed CPUs to the deadline."""
    from search.context import SweepContext

    path = tiny_sweep(tmp_path / "space.yaml", n=1000, epochs=10_000)
    path.write_text(path.read_text().replace("max_epochs: 10000, ", "recheck_rungs: true, "))
    space = load_sweeps(str(path), {"time_budget_s": 40.0})[0]
    assert space.settings.max_epochs is None and space.settings.epochs_cap() == 100_000
    with SweepContext().active() as context:
        grid = run_sweep(space, sleeping_trial, Request("exp", str(tmp_path / "results")))
    use = context.budget.use()
    assert not grid.errors and 2 < len(grid) < 1000  # more than the first wave; the window ended the starts
    assert use.seconds == 40 and use.resources == 2
    # the whole budget is spent: CPUs idle at most 10% of it. How it splits between training and
    # starting trials depends on the machine's load (a trial's start takes 2 to 5 s), so it is not asserted
    assert use.share(use.idle) <= 0.10, use.line()
    epochs = [len(r.metrics_dataframe) for r in grid if r.metrics_dataframe is not None]
    assert max(epochs) > 40  # a survivor ran far past what its slow first epochs promised
