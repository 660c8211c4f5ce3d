"""`make_report`: the analysis of the best models of a sweep (or one checkpoint) as a
folder of figures, metrics.json and one self-contained report.html."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from analysis import filters, html, plots, saliency
from analysis.explain import Explanation, Options, explain
from analysis.metrics import confusion, describe_never_predicted, prior_tradeoff
from analysis.sources import ModelSource, resolve_source
from analysis.sweep import IMPORTANCE, family_table, finished, param_importance
from fer.atomic import folder_to_write, write_text
from fer.calibration import N_BINS, adjust_for_prior, reliability
from fer.command import raise_if_interrupted
from fer.data import CLASSES
from fer.errors import FerError
from fer.evaluate import predict_checkpoint


def make_report(source: str, data: str | None = None, split: str | None = None, out: str | Path = "report",
                images: list[int] | None = None, layer: str | None = None, filters_layer: str | None = None,
                n_filters: int = 16, study_storage: str | None = None) -> dict:
    """Check the source and every option first, then write the report into `out`. A FerError
    leaves nothing behind: `out` is created only after the checks, and removed if it was new
    and the report fails part-way."""
    t0 = time.perf_counter()
    src = resolve_source(source, data, split, study_storage)
    opt = Options(images, layer, filters_layer, n_filters)
    primary = next((m for m in src.models if m.model.first_conv), src.models[0])  # a conv net explains best
    _check_options(primary, opt)
    out = Path(out)
    _check_out(out)
    new = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        metrics = _write_report(src, primary, opt, out, source, t0)
        raise_if_interrupted()  # a Ctrl-C whose exception Python dropped still removes the report
        return metrics
    except BaseException:
        if new:
            shutil.rmtree(out, ignore_errors=True)
        raise


class Section(NamedTuple):
    """One part of the report: its heading, its HTML, and what it found for metrics.json (merged
    into the report's metrics by _write_report; a section never writes into another's)."""

    title: str
    body: str
    found: dict = {}


def _merge(into: dict, found: dict) -> dict:
    """Deep-merge a section's findings into the report's metrics ({"models": {name: {...}}} nests)."""
    for key, value in found.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def _write_report(src, primary: ModelSource, opt: Options, out: Path, source: str, t0: float) -> dict:
    models = src.models
    metrics: dict = {"source": str(source), "models": {}}
    cms = {}
    for m in models:
        m.raw_probs = predict_checkpoint(m.ckpt, m.faces.images, adjusted=False)
        m.preds = adjust_for_prior(m.raw_probs, m.prep).argmax(1)
        cms[m.name] = confusion(m.faces.labels, m.preds)
        metrics["models"][m.name] = _model_metrics(m, cms[m.name])
    sections = [Section("Summary", _summary(models, metrics))]
    if src.best:
        sections.append(_family_section(src.best, {m.family: metrics["models"][m.name] for m in models}))
    sections += [_members_section(m) for m in models if m.ckpt.members]
    sections.append(_confusion_section(cms, out))
    sections.append(_calibration_section(models, out))
    sections.append(_prior_section(models))
    sections += _explanation_sections(explain(primary, opt), out)
    sections.append(_curves_section(models, src, out))
    if src.table is not None:
        sections.append(_sweep_section(src, out))
        sections.append(_pareto_section(src, source, out))
    for section in sections:
        _merge(metrics, section.found)
    metrics["seconds"] = time.perf_counter() - t0
    write_text(out / "metrics.json", json.dumps(_jsonable(metrics), indent=2))
    write_text(out / "report.html", html.page(f"FER analysis: {Path(str(source)).name}",
                                              [(x.title, x.body) for x in sections]))
    return metrics


def _check_out(out: Path) -> None:
    """--out is a new folder, an empty one, or an earlier report's (which is replaced): never a
    file, nor a folder of the user's whose files a figure of the same name would overwrite."""
    folder_to_write(out)
    if out.is_dir() and any(out.iterdir()) and not (out / "report.html").exists():
        raise FerError(f"--out {out}: holds files but no report (report.html): name a new or empty folder, "
                       "or an earlier report's, which is replaced")


def _check_options(m: ModelSource, opt: Options) -> None:
    """--images within the judged images; --layer a layer with a showable output (conv maps or a
    vector); --filters-layer one with conv maps, which activation maximisation needs."""
    n = len(m.faces)
    bad = [i for i in opt.images or [] if not 0 <= i < n]
    if bad:
        raise FerError(f"--images: index {bad[0]} is outside 0..{n - 1} of {m.source_label}")
    dims = filters.output_dims(m.model, m.prep.crop_size)
    for flag, name, allowed in (("--layer", opt.layer, (2, 4)), ("--filters-layer", opt.filters_layer, (4,))):
        if name is None:
            continue
        if name not in dims:
            shown = [k for k, d in dims.items() if d in allowed]
            raise FerError(f"{flag} {name}: no such layer in {m.name} (layers: {', '.join(shown[:12])}"
                           f"{', ...' if len(shown) > 12 else ''})")
        if dims[name] not in allowed:
            kind = "conv feature maps" if allowed == (4,) else "conv feature maps or a vector"
            raise FerError(f"{flag} {name}: its output is not {kind} (e.g. {m.model.first_activation})")


def _model_metrics(m: ModelSource, cm: dict) -> dict:
    hist = m.ckpt.history
    return {"checkpoint": m.path, "family": m.family, "n": int(len(m.preds)), "split": m.split_name,
            "accuracy": cm["accuracy"], "macro_f1": cm["macro_f1"], "per_class": cm["per_class"],
            "macro_avg": cm["macro_avg"], "weighted_avg": cm["weighted_avg"],
            "confusion_matrix": cm["confusion_matrix"],
            "never_predicted": cm["never_predicted"], "num_params": m.num_params,
            "seconds_per_epoch": float(np.mean([h["epoch_s"] for h in hist])) if hist else None}


def _summary(models: list[ModelSource], metrics: dict) -> str:
    lines = []
    for m in models:
        s = metrics["models"][m.name]
        lines.append(html.para(f"{m.name} ({m.family}, {m.num_params:,} trainable parameters): accuracy "
                               f"{s['accuracy']:.3f}, macro-F1 {s['macro_f1']:.3f} on {s['n']} images of "
                               f"{m.source_label}."))
        if s["never_predicted"]:
            lines.append(html.para(f"{m.name}: " + describe_never_predicted(s["never_predicted"]), "warn"))
    return "\n".join(lines)


def _family_heading(rows: list[dict]) -> str:
    """"matched parameters" only when the families' best are within 5% of each other in size."""
    sizes = [r["parameters"] for r in rows if r.get("parameters")]
    matched = len(sizes) > 1 and max(sizes) <= 1.05 * min(sizes)
    return " against ".join(r["family"].upper() for r in rows) + (" at matched parameters" if matched else "")


def _family_section(best: list[dict], evaluated: dict) -> Section:
    rows = family_table(best, evaluated).to_dict("records")
    df = pd.DataFrame(rows)
    text = "Each family's best trial, scored on the same images; parameters are trainable ones."
    if len(df) == 2 and df["accuracy"].notna().all():
        a, b = df.iloc[0], df.iloc[1]
        lead = a if a["accuracy"] >= b["accuracy"] else b
        text += f" The {lead['family']} leads by {abs(a['accuracy'] - b['accuracy']):.3f} accuracy."
    return Section(_family_heading(rows), html.para(text) + html.table(df), {"family_table": rows})


def _confusion_section(cms: dict, out: Path) -> Section:
    path = plots.save(plots.confusion_matrices(cms), out / "confusion_matrix.png")
    parts = [html.image(path, "confusion matrices")]
    for name, cm in cms.items():
        rates = np.diag(cm["rates"])
        worst = CLASSES[int(np.argmin(rates))]
        parts.append(html.para(f"{name}: rows are true classes; the weakest recall is '{worst}' "
                               f"({rates.min():.2f}). " + describe_never_predicted(cm["never_predicted"]),
                               "warn" if cm["never_predicted"] else ""))
        rows = {**cm["per_class"], "macro avg": cm["macro_avg"], "weighted avg": cm["weighted_avg"]}
        parts.append(html.table(pd.DataFrame(rows).T.reset_index().rename(columns={"index": "class"})))
    return Section("Confusion matrix and per-class scores", "\n".join(parts))


def _calibration_section(models: list[ModelSource], out: Path) -> Section:
    """Reliability before and after each model's temperature, on the images it is judged on."""
    curves, rows, found = {}, [], {}
    for m in models:
        before = reliability(m.faces.labels, predict_checkpoint(m.ckpt.with_prep(temperature=1.0), m.faces.images))
        after = reliability(m.faces.labels, adjust_for_prior(m.raw_probs, m.prep))
        curves[m.name] = (before, after)
        t = m.ckpt.temperature
        found[m.name] = {"temperature": t, "ece": after.ece, "ece_at_temperature_1": before.ece}
        rows.append({"model": m.name, "temperature": t, "ECE at T=1": before.ece, "ECE": after.ece})
    path = plots.save(plots.reliability_diagrams(curves), out / "reliability.png")
    note = (f"Expected calibration error over {N_BINS} confidence bins. Each model's temperature was fitted on the "
            "split it was selected on; judged on that same split, its ECE is optimistic.")
    return Section("Calibration", html.image(path, "reliability diagrams") + html.table(pd.DataFrame(rows))
                   + html.para(note), {"models": found})


def _prior_section(models: list[ModelSource]) -> Section:
    """What post-hoc logit adjustment would buy each model: rare-class recall against accuracy."""
    parts = [html.para("Each row divides the predicted probabilities of classes rarer than uniform by their "
                       "training share (times 7) to the power tau, then renormalises (train.logit_adjust, "
                       "or train.balance_within to choose tau per validation). A model's own tau is marked.")]
    found = {}
    for m in models:
        own = m.prep.logit_adjust
        taus = sorted({0.0, 0.25, 0.5, 0.75, 1.0, own})
        df = prior_tradeoff(m.faces.labels, m.raw_probs, m.prep.class_prior, taus)
        found[m.name] = {"prior_tradeoff": df.to_dict("records")}
        df.insert(0, "model", [m.name + (" (own)" if t == own else "") for t in df["tau"]])
        parts.append(html.table(df[["model", "tau", "accuracy", "macro_f1", "recall_disgust", "recall_fear",
                                    "recall_surprise"]]))
    return Section("Rare classes and the class prior", "\n".join(parts), {"models": found})


def _members_section(m: ModelSource) -> Section:
    """An ensemble's members and weights, and what the explanations below show of it."""
    members = m.ckpt.members
    rows = pd.DataFrame([{"member": e.trial, "model": e.model["name"], "weight": round(e.weight, 3),
                          "tta": e.tta, "crop": e.crop_size} for e in members])
    note = (f"{m.name} averages the probabilities of {len(members)} models with these weights. Its saliency maps "
            "are the gradients of the whole ensemble; Grad-CAM is left out (it has no one last conv layer), and "
            f"the filters and activations shown are those of its first member ({members[0].trial}).")
    return Section(f"Ensemble members of {m.name}", html.table(rows) + html.para(note))


def _explanation_sections(e: Explanation, out: Path) -> list[Section]:
    expl = {"images": e.images.tolist(), "randomisation": e.randomisation}
    if e.mask_share is not None:
        expl["mask_share"] = e.mask_share
    path = plots.save(plots.saliency_grid(e.shown, e.maps, e.captions), out / "saliency.png")
    unreliable = [k for k, v in e.randomisation.items() if not v["reliable"]]
    text = (f"Saliency of {e.name} for {len(e.images)} images (target: the predicted class). Model-randomisation "
            "check (Spearman correlation of each method's maps with those of the same network re-initialised): "
            + ", ".join(f"{k} {v['spearman']:.2f}" for k, v in e.randomisation.items()) + ". ")
    text += (f"Marked unreliable (correlation >= {saliency.UNRELIABLE_RHO}): {', '.join(unreliable)}."
             if unreliable else "Every method changes with the weights, so the maps reflect what was learned.")
    parts = [html.image(path, "saliency maps"), html.para(text, "warn" if unreliable else "")]
    if e.mask_share is not None:
        parts.append(html.para("Share of attribution inside the regions that decide the class (eyes, brows, mouth) "
                               "against their share of the image: " + ", ".join(
                                   f"{k} {v['share_inside']:.2f} vs {v['area_share']:.2f}"
                                   for k, v in e.mask_share.items()) + "."))
    return [Section("Saliency maps", "\n".join(parts), {"explanations": {e.name: expl}}), *_filter_sections(e, out)]


def _filter_sections(e: Explanation, out: Path) -> list[Section]:
    sections = []
    if e.kernels is not None:
        found = {"filters": {e.name: {"layer": e.pattern_layer, "kernels": len(e.kernels),
                                      "patterns": len(e.patterns)}}} if e.patterns is not None else {}
        path = plots.save(plots.filters_figure(e.kernels, e.patterns, e.pattern_layer), out / "filters.png")
        sections.append(Section("Filters", html.image(path, "filters") + html.para(
            f"Top: the {len(e.kernels)} kernels of the first conv layer. Bottom: inputs that maximise filters of "
            f"{e.pattern_layer} (gradient ascent with jitter and a smoothness prior); repeated, oriented strokes "
            "mean the filter detects edges or textures at that scale."), found))
    acts, image = e.activations, int(e.images[0])
    path = plots.save(plots.image_panels(acts, f"{e.layer} for image {image}", cmap="viridis"),
                      out / "activations.png")
    dead = int((acts.reshape(len(acts), -1).max(1) <= 0).sum())
    found = {"activations": {e.name: {"layer": e.layer, "image": image, "channels": len(acts),
                                      "silent_channels": dead}}}
    sections.append(Section("Activations", html.image(path, "activations") + html.para(
        f"The output of {e.layer} for image {image}, one panel per channel; {dead} of {len(acts)} channels "
        "are silent (all zero) for this face."), found))
    return sections


def _curves_section(models, src, out: Path) -> Section:
    histories = {m.name: m.ckpt.history for m in models}
    path = plots.save(plots.learning_curves(histories, src.trial_curves, src.metric), out / "curves.png")
    gaps = {n: h[-1]["train_acc"] - h[-1]["val_acc"] for n, h in histories.items() if h}
    text = "Training (dashed) against validation accuracy and loss per epoch. " + "; ".join(
        f"{n}: final train-val accuracy gap {g:+.3f}" for n, g in gaps.items()) + "."
    return Section("Learning curves", html.image(path, "learning curves") + html.para(text))


def _sweep_section(src, out: Path) -> Section:
    """Each sweep's stored study in Optuna's figures, its fANOVA importances, and every trial."""
    table, metric = src.table, src.metric
    parts, notes, importances = [], [], {}
    for exp, study in src.studies.items():
        if study is None:
            server = src.study_servers.get(exp)
            notes.append(f"{exp}: its study is on {server}, which a report opens only when named: "
                         "analysis report --optuna-storage URL" if server else
                         f"{exp}: no Optuna study stored (a sweep made before studies were kept, or one whose "
                         "storage cannot be reached from here)")
            continue
        importance = param_importance(study)
        importances[exp] = importance
        n = len(finished(study))
        figures = plots.study_figures(study, exp, metric, importance, IMPORTANCE)
        parts += [html.image(plots.save(fig, out / f"sweep_{exp}_{key}.png"), f"{exp} sweep")
                  for key, fig in figures.items()]
        top = next(iter(importance), None)
        notes.append(f"{exp}: {len(study.trials)} trials in the study ({n} finished"
                     + (f", {sum('imported_from' in t.user_attrs for t in study.trials)} imported by a warm start"
                        if any("imported_from" in t.user_attrs for t in study.trials) else "") + ")"
                     + (f"; most important by {IMPORTANCE}: {top}" if top else "; too few for importances")
                     + ("; few finished trials: read the importances as hints, not rankings" if 0 < n < 10 else ""))
    text = ("Optuna's figures of each sweep's stored study (optuna-dashboard shows the same study live). "
            "A trial's value is its best epoch's " + metric + ", whose checkpoint was kept. " + ". ".join(notes) + ".")
    return Section("Sweep", "".join(parts) + html.para(text) + html.table(
        table.drop(columns=["checkpoint"]).sort_values(metric, ascending=False)), {"importance": importances})


def _pareto_section(src, source, out: Path) -> Section:
    """Every trial's metric against its size and its CPU latency (measured once per checkpoint)."""
    from fer.ship.cost import LATENCY_RUNS
    from search.ship.pareto import measured_trials

    table = measured_trials(source, table=src.table)
    path = plots.save(plots.pareto_figure(table), out / "pareto.png")
    front = table[table["pareto"] != ""]
    text = (f"{len(table)} trials' best checkpoints; latency is the median of {LATENCY_RUNS} single-face calls "
            "on the machine that wrote this report, with each model's test-time augmentation. Ringed: "
            "Pareto-optimal (no other trial scores as well for fewer parameters, or for less latency): "
            f"{', '.join(front['trial_id'])}.")
    rows = table.drop(columns=["checkpoint"])
    return Section("Accuracy against size and latency", html.image(path, "Pareto plot") + html.para(text)
                   + html.table(rows), {"pareto": rows.to_dict("records")})


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
