"""analysis.plots draws each figure from a computed result and writes nothing: the tests draw every
figure in memory and read back what is on it."""
import numpy as np
import optuna
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import plots
from analysis.metrics import confusion
from fer.calibration import reliability

RNG = np.random.default_rng(0)


def _titles(fig: Figure) -> list[str]:
    return [ax.get_title(loc=loc) for ax in fig.axes for loc in ("left", "center") if ax.get_title(loc=loc)]


def test_the_confusion_figure_names_a_never_predicted_class_under_its_column(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    labels = np.repeat(np.arange(7), 5)
    preds = np.where(labels == 1, 0, labels)  # disgust never predicted
    fig = plots.confusion_matrices({"seed dnn": confusion(labels, preds)})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "disgust\n(never)" in ticks and "angry" in ticks
    assert "seed dnn: counts (accuracy 0.857)" in _titles(fig)
    assert not list(tmp_path.iterdir())  # drawn, nothing written


def test_every_other_figure_is_drawn_from_its_computed_result():
    labels = RNG.integers(0, 7, 200)
    probs = RNG.dirichlet(np.ones(7), 200)
    r = reliability(labels, probs)
    assert len(plots.reliability_diagrams({"m": (r, r)}).axes) == 1
    maps = {"saliency": RNG.random((2, 48, 48)), "grad_cam": RNG.random((2, 48, 48))}
    grid = plots.saliency_grid(RNG.random((2, 48, 48)), maps, ["a", "b"])
    assert len(grid.axes) == 2 * 4 and grid.axes[1].get_title() == "saliency"
    panels = plots.image_panels(RNG.random((20, 6, 6)), "block1.act for image 3")
    assert panels.get_suptitle() == "block1.act for image 3" and len(panels.axes) == 2 * 16
    filters = plots.filters_figure(RNG.random((16, 3, 3)), RNG.random((8, 48, 48)), "block3.conv1")
    assert "activation maximisation: block3.conv1" in _titles(filters)
    history = [{"epoch": e, "train_acc": 0.1 * e, "val_acc": 0.1 * e, "train_loss": 1 / e, "val_loss": 1 / e}
               for e in (1, 2, 3)]
    curves = plots.learning_curves({"best cnn": history}, {}, "val_acc")
    assert _titles(curves) == ["accuracy", "loss"] and len(curves.axes[0].lines) == 2
    table = pd.DataFrame({"family": ["cnn", "cnn", "dnn"], "params": [1e5, 2e5, 1e6], "latency_ms": [1.0, 2.0, 0.5],
                          "value": [0.5, 0.6, 0.4], "pareto": ["params latency", "params", "latency"],
                          "metric": "val_acc"})
    assert len(plots.pareto_figure(table).axes) == 2


def test_study_figures_draw_the_importances_they_are_given_not_their_own():
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-1, log=True) + t.suggest_int("w", 1, 4), n_trials=6)
    figures = plots.study_figures(study, "cnn", "val_acc", {"w": 0.75, "lr": 0.25}, "fANOVA")
    assert list(figures)[:2] == ["history", "importance"] and "parallel" in figures
    bars = figures["importance"].axes[0]
    assert [t.get_text() for t in bars.get_yticklabels()] == ["lr", "w"]  # most important on top
    assert [p.get_width() for p in bars.patches] == pytest.approx([0.25, 0.75])
    assert "importance" not in plots.study_figures(study, "cnn", "val_acc", {}, "fANOVA")


def test_a_figure_is_saved_whole_in_the_format_its_name_says(tmp_path):
    path = plots.save(plots.image_panels(RNG.random((3, 4, 4)), "x"), tmp_path / "x.png")
    assert path == str(tmp_path / "x.png") and (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"
