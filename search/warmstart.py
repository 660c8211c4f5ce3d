"""Warm starts: a new sweep's study first receives an earlier study's finished trials whose
parameters fit the new space, so TPE's first suggestions are informed by them. Tune never sees
these trials: the new sweep's num_samples counts only the trials it runs.

A source is an experiment folder, local or at a storage URI (its sweeps' optuna.db files), or a
study database's URL; the study is
the one of the new sweep's family and metric (or the one --warm-start-study names).
"""
from __future__ import annotations

from collections import Counter

import optuna

from fer.errors import FerError
from fer.remote import is_database, local_file, location
from search.results import STUDY_FILE
from search.study import mask_passwords, open_storage


def source_studies(source: str, study_name: str | None = None) -> list[tuple[str, optuna.study.StudySummary]]:
    """(storage URL, study summary) of every study the source holds (only `study_name`, if given)."""
    if is_database(source):
        urls = [source]
    else:  # an experiment folder, or one at a storage URI (its studies read from local copies)
        root = location(source)
        if not root.exists():
            raise FerError(f"--warm-start-from {source}: no such folder")
        urls = [f"sqlite:///{local_file(p).resolve()}" for p in sorted(root.rglob(STUDY_FILE))]
        if not urls:
            raise FerError(f"--warm-start-from {source}: no {STUDY_FILE} inside (sweeps write one per experiment)")
    found = [(url, s) for url in urls for s in optuna.get_all_study_summaries(open_storage(url))]
    if study_name:
        found = [(url, s) for url, s in found if s.study_name == study_name]
        if not found:
            raise FerError(f"--warm-start-study {study_name}: not in {mask_passwords(source)}")
    return found


def pick_study(found: list, space, source: str) -> tuple[str, str]:
    """The (URL, study name) among `found` for the new sweep: same family (and, among several,
    the same sweep name). A study of another metric is refused: its values mean something else."""
    same = [(url, s) for url, s in found if s.user_attrs.get("family") == space.family]
    if len(same) > 1:
        same = [(url, s) for url, s in same if s.study_name.rsplit("/", 1)[-1] == space.name] or same
    if not same:
        held = ", ".join(f"{s.study_name} ({s.user_attrs.get('family', '?')})" for _, s in found) or "none"
        raise FerError(f"--warm-start-from {mask_passwords(source)}: no study of family {space.family!r} "
                       f"(studies: {held})")
    if len(same) > 1:
        raise FerError(f"--warm-start-from {mask_passwords(source)}: several {space.family} studies "
                       f"({', '.join(s.study_name for _, s in same)}): name one with --warm-start-study")
    url, summary = same[0]
    metric = summary.user_attrs.get("metric")
    if metric != space.settings.metric:
        raise FerError(f"--warm-start-from {mask_passwords(source)}: study {summary.study_name} was scored by "
                       f"{metric}, this sweep by {space.settings.metric}")
    return url, summary.study_name


def fits(value, dist) -> bool:
    """Whether a value lies in a distribution of the new space (its choices, or its range and step)."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return value in dist.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not dist.low <= value <= dist.high:
        return False
    return dist.step is None or abs((value - dist.low) / dist.step - round((value - dist.low) / dist.step)) < 1e-9


def fitting_trials(trials, dists: dict) -> tuple[list, Counter]:
    """The finished trials whose searched values all fit `dists` (parameters the new space does
    not search are dropped); and, for the others, a count per parameter that did not fit."""
    kept, left_out = [], Counter()
    for t in trials:
        params = {k: v for k, v in t.params.items() if k in dists}
        misfits = [k for k, v in params.items() if not fits(v, dists[k])]
        if misfits:
            left_out.update(misfits)
            continue
        kept.append((t, params))
    return kept, left_out


def import_plan(source: str, study_name: str | None, space) -> tuple[list, str]:
    """The trials to give the new sweep's study, and one line saying what was taken and left out."""
    url, name = pick_study(source_studies(source, study_name), space, source)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    dists = space.distributions()
    kept, left_out = fitting_trials(done, dists)
    label = f"{mask_passwords(url)} {name}"
    trials = [optuna.trial.create_trial(
        params=params, distributions={k: dists[k] for k in params}, value=t.value,
        intermediate_values=t.intermediate_values,
        user_attrs={"imported_from": label, "source_trial": t.number,
                    **{k: v for k, v in t.user_attrs.items() if k in ("checkpoint", "num_params", "epochs")}})
        for t, params in kept]
    why = ", ".join(f"{n} with {k.replace('/', '.')} outside this space" for k, n in left_out.most_common())
    line = (f"warm start from study {name} ({mask_passwords(url)}): {len(kept)} of {len(done)} finished trials imported"
            + (f"; {len(done) - len(kept)} left out ({why})" if why else ""))
    return trials, line


def unseen_points(points: list[dict], imported: list) -> list[dict]:
    """The space's warm_start points that no imported trial has already measured (same values)."""
    return [p for p in points if not any(all(t.params.get(k) == v for k, v in p.items()) for t in imported)]
