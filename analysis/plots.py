"""Matplotlib figures drawn from results the analysis modules computed; nothing is computed here
and nothing is written: each function returns its `Figure` (optionally drawing into one it is
given), and the report saves it with `save`. Figures are made with matplotlib's object API
(`matplotlib.figure.Figure`), not pyplot: no backend and no global figure state is involved, so
a caller, a notebook or a test draws them as it likes. Only Optuna's own figures go through
pyplot, whose backend the caller picks (analysis.cli picks Agg)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.layout_engine import PlaceHolderLayoutEngine
from matplotlib.ticker import MaxNLocator

from fer.atomic import write_atomic
from fer.data import CLASSES


def save(fig: Figure, path) -> str:
    """Write a figure atomically (its format from the suffix); the path, as a string. A figure
    laid out by its own engine (ours are "constrained", or `_grid_figure`'s fixed margins) is
    saved as drawn; "tight" cropping, which draws the figure a second time to measure it, is kept
    for the others (Optuna's)."""
    tight = None if fig.get_layout_engine() is not None else "tight"
    write_atomic(path, lambda f: fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", dpi=110,
                                             bbox_inches=tight))
    return str(path)


def confusion_matrices(results: dict[str, dict]) -> Figure:
    """Counts and row-normalised rates for each model (scikit-learn's ConfusionMatrixDisplay);
    never-predicted classes marked on the predicted axis."""
    from sklearn.metrics import ConfusionMatrixDisplay

    fig = Figure(figsize=(12, 5.6 * len(results)), layout="constrained")
    axes = fig.subplots(len(results), 2, squeeze=False)
    for row, (name, cm) in zip(axes, results.items()):
        panels = ((row[0], cm["counts"], "counts", "d"), (row[1], cm["rates"], "row-normalised", ".2f"))
        for ax, data, title, fmt in panels:
            ConfusionMatrixDisplay(data, display_labels=list(CLASSES)).plot(
                ax=ax, cmap="Blues", values_format=fmt, colorbar=False, xticks_rotation=45)
            never = [f"{c}\n(never)" if c in cm["never_predicted"] else c for c in CLASSES]
            ax.set_xticks(range(len(CLASSES)), never, rotation=45, ha="right")
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(f"{name}: {title} (accuracy {cm['accuracy']:.3f})")
    return fig


def reliability_diagrams(curves: dict[str, tuple]) -> Figure:
    """One panel per model: the confidence bins of fer.calibration.reliability before and after its
    temperature (accuracy against mean confidence; the diagonal is perfect calibration)."""
    fig = Figure(figsize=(4.4 * len(curves), 4.2), layout="constrained")
    axes = fig.subplots(1, len(curves), squeeze=False)
    for ax, (name, (before, after)) in zip(axes[0], curves.items()):
        ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--")
        for r, label, colour in ((before, "temperature 1", "#c44"), (after, "fitted temperature", "#36c")):
            seen = r.counts > 0
            ax.plot(r.confidence[seen], r.accuracy[seen], "o-", color=colour, ms=4,
                    label=f"{label} (ECE {r.ece:.3f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top-class probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(name)
        ax.legend(loc="upper left", fontsize=8)
    return fig


def _grid_figure(width: float, height: float, top_in: float, left_in: float = 0.05) -> Figure:
    """A figure for a grid of images at fixed margins (inches kept for titles and labels): a
    constrained or tight layout of the saliency grid's 84 axes took longer than drawing it."""
    fig = Figure(figsize=(width, height), layout=PlaceHolderLayoutEngine(adjust_compatible=True,
                                                                         colorbar_gridspec=False))
    fig.subplots_adjust(left=left_in / width, right=1 - 0.05 / width, bottom=0.05 / height,
                        top=1 - top_in / height, wspace=0.08, hspace=0.25)
    return fig


def saliency_grid(images: np.ndarray, maps: dict[str, np.ndarray], captions: list[str]) -> Figure:
    """One row per image: the face, each method's map, and an overlay of the first map."""
    methods = list(maps)
    cols = 2 + len(methods)
    fig = _grid_figure(1.9 * cols, 2.0 * len(images), top_in=0.3, left_in=0.3)
    axes = fig.subplots(len(images), cols, squeeze=False)
    for i, img in enumerate(images):
        axes[i, 0].imshow(img, cmap="gray")
        axes[i, 0].set_ylabel(captions[i], fontsize=7)
        for j, m in enumerate(methods, 1):
            axes[i, j].imshow(maps[m][i], cmap="inferno")
        axes[i, -1].imshow(img, cmap="gray")
        axes[i, -1].imshow(maps[methods[-1]][i], cmap="jet", alpha=0.45)
        if i == 0:
            for j, title in enumerate(["face", *methods, f"overlay ({methods[-1]})"]):
                axes[0, j].set_title(title.replace("_", " "), fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def image_panels(panels: np.ndarray, title: str, cmap="gray", cols: int = 16) -> Figure:
    """A grid of small images (filters, patterns or activation maps)."""
    n = len(panels)
    cols = min(cols, n)
    rows = int(np.ceil(n / cols))
    fig = _grid_figure(1.1 * cols, 1.1 * rows + 0.5, top_in=0.55)
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < n:
            ax.imshow(panels[k], cmap=cmap)
            ax.set_title(str(k), fontsize=6)
    fig.suptitle(title, fontsize=10)
    return fig


def filters_figure(kernels: np.ndarray | None, patterns: np.ndarray | None, layer: str | None) -> Figure:
    parts = [(kernels, "first conv kernels"), (patterns, f"activation maximisation: {layer}")]
    parts = [(p, t) for p, t in parts if p is not None]
    cols = 16
    rows = [int(np.ceil(len(p) / cols)) for p, _ in parts]
    fig = _grid_figure(cols * 0.9, 0.9 * sum(rows) + 0.6 * len(parts), top_in=0.3)
    grid = fig.add_gridspec(sum(rows), cols, hspace=0.25 + 0.6 * (len(parts) - 1) / max(1, sum(rows)))
    r0 = 0
    for (panels, title), nrows in zip(parts, rows):
        for k in range(nrows * cols):
            ax = fig.add_subplot(grid[r0 + k // cols, k % cols])
            ax.axis("off")
            if k < len(panels):
                ax.imshow(panels[k], cmap="gray" if "kernels" in title else "viridis")
            if k == 0:
                ax.set_title(title, fontsize=9, loc="left")
        r0 += nrows
    return fig


def learning_curves(histories: dict[str, list[dict]], trial_curves: dict[str, dict], metric: str) -> Figure:
    """Accuracy and loss per epoch of the chosen models; every trial's validation curve beside."""
    cols = 3 if trial_curves else 2
    fig = Figure(figsize=(5.2 * cols, 4))
    axes = fig.subplots(1, cols)
    for name, h in histories.items():
        ep = [m["epoch"] for m in h]
        axes[0].plot(ep, [m["train_acc"] for m in h], "--", label=f"{name} train")
        axes[0].plot(ep, [m["val_acc"] for m in h], label=f"{name} val")
        axes[1].plot(ep, [m["train_loss"] for m in h], "--", label=f"{name} train")
        axes[1].plot(ep, [m["val_loss"] for m in h], label=f"{name} val")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set(title="accuracy", xlabel="epoch")
    axes[1].set(title="loss", xlabel="epoch")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    if trial_curves:
        for f, (family, curves) in enumerate(trial_curves.items()):
            for k, df in enumerate(curves.values()):
                if metric in df:
                    axes[2].plot(df["training_iteration"], df[metric], color=f"C{f}",
                                 alpha=0.5, label=family if k == 0 else None)
        axes[2].set(title=f"every trial: {metric}", xlabel="epoch")
        axes[2].legend(fontsize=7)
    return fig


def importance_bars(importance: dict[str, float], title: str) -> Figure | None:
    """Horizontal bars of computed importances (analysis.sweep.param_importance), most important
    on top; None when there are none to draw."""
    if not importance:
        return None
    names = list(importance)[::-1]
    fig = Figure(figsize=(6.4, 0.5 * len(names) + 1.2), layout="constrained")
    ax = fig.subplots()
    ax.barh(names, [importance[n] for n in names], color="C0")
    ax.set_xlabel("importance (share of the metric's variance)")
    ax.set_title(textwrap.fill(title, 44))  # constrained layout keeps a title inside, never shrinks it
    return fig


def study_figures(study, name: str, metric: str, importance: dict[str, float],
                  importance_label: str) -> dict[str, Figure]:
    """Figures of one sweep's study: Optuna's own optimisation history, parallel coordinates and
    intermediate values (optuna.visualization.matplotlib), and the importances computed once by
    the caller. A figure Optuna cannot draw for this study (too few trials, no parameter) is left
    out. {key: figure}; Optuna's are pyplot's, closed here (pyplot forgets them; they stay
    drawable and savable)."""
    import warnings

    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    n = sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    figures = (("history", f"{name}: optimisation history", lambda: ovm.plot_optimization_history(
                   study, target_name=metric)),
               ("parallel", f"{name}: parallel coordinates (colour: {metric})",
                lambda: ovm.plot_parallel_coordinate(study, target_name=metric)),
               ("intermediate", f"{name}: {metric} per epoch", lambda: ovm.plot_intermediate_values(study)))
    drawn = {}
    for key, title, draw in figures:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ax = draw()
            except (ValueError, RuntimeError):
                plt.close("all")
                continue
        ax = ax.ravel()[0] if isinstance(ax, np.ndarray) else ax
        plt.close(ax.figure)
        if not ax.has_data() and not ax.collections:
            continue
        for loc in ("left", "center"):
            ax.set_title("", loc=loc)  # Optuna's own titles (one is left-aligned) give way to ours
        ax.set_title(title)
        if key == "intermediate":
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        drawn[key] = ax.figure
    bars = importance_bars(importance, f"{name}: {importance_label} importance for {metric} ({n} finished trials)")
    if bars is not None:
        drawn = {"history": drawn.pop("history"), "importance": bars, **drawn} if "history" in drawn else \
            {"importance": bars, **drawn}
    return drawn


def pareto_figure(table) -> Figure:
    """The validation metric against parameters and against CPU latency, one colour per family;
    Pareto-optimal trials ringed and joined (table: search.ship.pareto.measured_trials)."""
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, cost, mark, label in ((axes[0], "params", "params", "trainable parameters"),
                                  (axes[1], "latency_ms", "latency", "CPU ms per face at batch 1, with TTA")):
        for k, (family, rows) in enumerate(table.groupby("family")):
            ax.scatter(rows[cost], rows["value"], color=f"C{k}", alpha=0.7, label=family)
        front = table[table["pareto"].str.contains(mark)].sort_values(cost)
        ax.scatter(front[cost], front["value"], s=120, facecolors="none", edgecolors="black", label="Pareto-optimal")
        ax.step(front[cost], front["value"], where="post", color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(f"validation {table['metric'].iloc[0]}")
        ax.legend(fontsize=8)
    return fig
