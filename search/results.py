"""Read finished (or running) experiments: every trial as a pandas row, and the best
trial of each family with a path to its best checkpoint in fer's format.

An experiment is a local folder or a storage URI (s3://, gs://: where Ray Tune wrote it), read
alike through fer.remote: listed and read in place, nothing written back; a checkpoint's path
is then its URI, which fer.checkpoint fetches into a local cache when it is loaded.

Plain data only: sweep.json, the JSON of Tune's experiment state, each trial's result.json
and the study database. Nothing here unpickles (Tune's own readers would: see _tune_state),
so inspecting a results folder from shared storage runs no code from it. Light to import
(pandas only)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from fer.errors import FerError
from fer.remote import RemoteError, local_file, location
from search.uri import TRIAL_PREFIX, trial_folder

TUNE_STATE = "experiment_state-*.json"  # Tune's experiment snapshot: JSON, some fields hex pickles
SWEEP_FILE = "sweep.json"  # written by search.sweep beside Tune's files: family, metric, searched keys
STUDY_FILE = "optuna.db"  # the sweep's Optuna study, unless it went to another storage (search.study)


class ResultsError(FerError):
    """A results folder holds no experiment, or one that cannot be read."""


def find_experiments(root: str | Path) -> list[Path]:
    """Experiment folders (each with sweep.json and Tune's experiment state) under root, root
    included: Paths, or RemotePaths for a storage URI."""
    root = location(root)
    if not root.exists():
        raise ResultsError(f"{root}: no such folder")
    root = root.resolve()
    found = sorted(p.parent for p in root.rglob(SWEEP_FILE) if any(p.parent.glob(TUNE_STATE)))
    if not found:
        raise ResultsError(f"{root}: no search experiments inside (looked for {SWEEP_FILE} with Tune state)")
    return found


def read_info(exp: Path) -> dict:
    """sweep.json, checked for the keys every reader needs."""
    path = location(exp) / SWEEP_FILE
    try:
        info = json.loads(path.read_text())
        if not isinstance(info, dict) or not isinstance(info.get("metric"), str) or "family" not in info:
            raise ValueError("no 'family' and 'metric'")
    except (OSError, ValueError, RemoteError) as e:
        raise ResultsError(f"{path}: not a sweep description ({e})") from None
    info.setdefault("searched", [])
    return info


def _tune_state(exp: Path) -> list[dict]:
    """Each trial's id, status, config and folder, from the newest experiment_state-*.json.

    Only its JSON is read. Tune's ExperimentAnalysis would also unpickle the fields it stores as
    hex pickles (CLOUDPICKLE_FALLBACK: the checkpoint manager, the storage context), which runs
    whatever code a tampered folder put there; nothing here decodes them."""
    state = sorted(exp.glob(TUNE_STATE))[-1]  # timestamped names: the last is the newest
    try:
        trials = [json.loads(t) for t, _ in json.loads(state.read_text())["trial_data"]]
        out = []
        for t in trials:
            folder = t.get("relative_logdir") or trial_folder(t["trial_id"])
            if Path(folder).name != folder or not folder.startswith(TRIAL_PREFIX) or not _inside(exp, folder):
                raise ValueError(f"trial folder {folder!r} is not a trial folder of the experiment")
            out.append({"trial_id": str(t["trial_id"]), "status": str(t["status"]),
                        "config": t.get("config") or {}, "path": str(exp / folder)})
        return out
    except (OSError, ValueError, KeyError, TypeError, RemoteError) as e:
        raise ResultsError(f"{state}: cannot read Tune's experiment state ({e.__class__.__name__}: {e})") from None


def _inside(exp, folder: str) -> bool:
    """A trial folder (a name) that stays inside the experiment: never a symlink out of it."""
    if not isinstance(exp, Path):
        return True  # object storage has no links
    where = exp / folder
    return not where.is_symlink() and (not where.exists() or where.resolve().parent == exp.resolve())


def read_history(trial_dir: str | Path) -> pd.DataFrame:
    """A trial's per-epoch results from its result.json (JSON lines), one row per epoch.

    A line cut short (a worker killed mid-write) is left out. After a lost node or a killed
    driver Tune's log can hold an epoch twice: Ray logs the result, then saves the checkpoint in
    a second round trip, and a kill between them reruns that epoch on retry. The last row of
    each epoch is the one the trial went on from, so it is the one kept."""
    rows = []
    path = location(trial_dir) / "result.json"
    text = path.read_text(errors="replace") if path.is_file() else ""
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            row.pop("config", None)
            rows.append(row)
    return dedupe_epochs(pd.DataFrame(rows))


def epoch_column(history: pd.DataFrame) -> str:
    """fer's own epoch count where every row logs it, else Tune's iteration. The two agree, except
    after a resume that continued a trial from a checkpoint newer than the one Tune recorded
    (search.storage.restore_recorded_checkpoints): Tune counts on from the recorded one's."""
    return "epoch" if "epoch" in history and history["epoch"].notna().all() else "training_iteration"


def epochs_run(history: pd.DataFrame | None) -> int:
    """How many epochs a trial ran, by its history (0 without one)."""
    return int(history[epoch_column(history)].max()) if history is not None and len(history) else 0


def dedupe_epochs(history: pd.DataFrame | None) -> pd.DataFrame | None:
    """One row per epoch (epoch_column), the last logged of each, in epoch order (None stays None)."""
    if history is None or "training_iteration" not in history or not len(history):
        return history
    key = epoch_column(history)
    return history.drop_duplicates(key, keep="last").sort_values(key, kind="stable").reset_index(drop=True)


def _kept_checkpoint(trial_dir: str, history: pd.DataFrame, metric: str) -> str | None:
    """The best-scoring epoch's checkpoint that is still on disk (the sweep keeps the best one:
    CheckpointConfig num_to_keep=1, scored by the metric), as a path to its checkpoint.pt."""
    if metric not in history or "checkpoint_dir_name" not in history:
        return None
    saved = history[history["checkpoint_dir_name"].notna() & history[metric].notna()]
    for name in saved.sort_values([metric, "training_iteration"], ascending=False)["checkpoint_dir_name"]:
        pt = location(trial_dir) / str(name) / "checkpoint.pt"
        if Path(str(name)).name == name and pt.is_file():
            return str(pt)
    return None


def _trials(exp: Path) -> tuple[dict, list[dict]]:
    """(sweep info, one dict per trial: id, status, config, history DataFrame, checkpoint), read from
    plain files only: sweep.json, Tune's experiment-state JSON and each trial's result.json."""
    exp = location(exp).resolve()
    info = read_info(exp)
    trials = []
    for t in _tune_state(exp):
        history = read_history(t["path"])
        trials.append({**t, "history": history, "checkpoint": _kept_checkpoint(t["path"], history, info["metric"])})
    return info, trials


def _searched(config: dict, info: dict) -> dict:
    """The values the searcher chose, as "section.key" (None where a conditional key was inactive)."""
    flat = {f"{s}.{k}": v for s in ("model", "train") for k, v in config.get(s, {}).items()}
    return {k.replace("/", "."): flat.get(k.replace("/", ".")) for k in info["searched"]}


def _row(exp: Path, info: dict, trial: dict) -> dict:
    h, metric = trial["history"], info["metric"]
    searched = _searched(trial["config"], info)
    best = h[metric].max() if metric in h else math.nan
    return {"experiment": exp.name, "family": info["family"], "trial_id": trial["trial_id"], "metric": metric,
            "status": trial["status"], "epochs": epochs_run(h),
            metric: best, "val_acc": h["val_acc"].max() if "val_acc" in h else math.nan,
            "val_macro_f1": h["val_macro_f1"].max() if "val_macro_f1" in h else math.nan,
            "num_params": int(h["num_params"].iloc[-1]) if "num_params" in h else None,
            "epoch_s": h["epoch_s"].mean() if "epoch_s" in h else math.nan,
            **{k: json.dumps(v) if isinstance(v, list) else v for k, v in searched.items()},
            "checkpoint": trial["checkpoint"]}


def trials_table(root: str | Path, study_storage: str | None = None) -> pd.DataFrame:
    """Every trial of every experiment under root, one row each; trials a warm start imported
    into a sweep's study have status IMPORTED (and no checkpoint of this experiment).
    `study_storage`: the study server the user named, for sweeps whose study lived there."""
    rows = []
    for exp in find_experiments(root):
        info, trials = _trials(exp)
        rows += [_row(exp, info, t) for t in trials] + _imported_rows(exp, info, study_storage)
    return pd.DataFrame(rows)


def study_location(exp: str | Path, info: dict | None = None) -> tuple[str | None, str | None]:
    """(SQLAlchemy URL of the sweep's own optuna.db opened read-only, or None; the server URL
    sweep.json names, or None). The second is only ever shown, never opened (load_study)."""
    from urllib.parse import quote

    exp = location(exp)
    info = info or read_info(exp)
    held = exp / STUDY_FILE
    own = f"sqlite:///file:{quote(str(local_file(held).resolve()))}?mode=ro&uri=true" if held.exists() else None
    named = info.get("optuna_storage")
    return own, (named if own is None and isinstance(named, str) and named else None)


def load_study(exp: str | Path, info: dict | None = None, study_storage: str | None = None):
    """The sweep's Optuna study, read: its optuna.db in the experiment folder (wherever the folder
    has moved; a local copy of one at a storage URI), opened read-only, so reading creates no
    file and changes none; else, for a sweep whose study lived on a server, `study_storage`, the
    URL the user gave. A URL written in sweep.json is never opened: a folder someone sends you
    must not make this process connect anywhere (with your PGPASSWORD) or create a database
    where it says. None for a sweep without a study here, or one that cannot be read."""
    import optuna

    exp = location(exp)
    info = info or read_info(exp)
    own, on_server = study_location(exp, info)
    url = own or (study_storage if on_server else None)
    if not url or not info.get("study_name"):
        return None
    try:
        storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
        return optuna.load_study(study_name=info["study_name"], storage=storage)
    except Exception:  # a server out of reach, a hidden password, a study deleted: the table goes on without it
        return None


def _imported_rows(exp: Path, info: dict, study_storage: str | None = None) -> list[dict]:
    import optuna

    study, metric = load_study(exp, info, study_storage), info["metric"]
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if study else []
    return [{"experiment": exp.name, "family": info["family"], "trial_id": f"imported#{t.user_attrs['source_trial']}",
             "metric": metric, "status": "IMPORTED", "epochs": t.user_attrs.get("epochs", len(t.intermediate_values)),
             metric: t.value, "num_params": t.user_attrs.get("num_params"),
             **{k.replace("/", "."): v for k, v in t.params.items()}, "checkpoint": None,
             "imported_from": t.user_attrs["imported_from"]}
            for t in done if "imported_from" in t.user_attrs]


def trial_histories(exp: str | Path) -> tuple[dict, dict[str, pd.DataFrame]]:
    """(sweep info, {trial_id: per-epoch DataFrame}) of one experiment."""
    info, trials = _trials(location(exp))
    return info, {t["trial_id"]: t["history"] for t in trials}


def best_trials(root: str | Path) -> list[dict]:
    """The best trial of each family: family, metric, value, config, params, checkpoint."""
    best: dict[str, dict] = {}
    for exp in find_experiments(root):
        info, trials = _trials(exp)
        metric = info["metric"]
        for t in trials:
            if metric not in t["history"] or t["checkpoint"] is None:
                continue
            value = float(t["history"][metric].max())
            family = info["family"]
            if family not in best or value > best[family]["value"]:
                best[family] = {"family": family, "metric": metric, "value": value, "config": t["config"],
                                "params": _searched(t["config"], info),
                                "checkpoint": t["checkpoint"], "experiment": str(exp), "trial_id": t["trial_id"],
                                "num_params": int(t["history"]["num_params"].iloc[-1])}
    if not best:
        raise ResultsError(f"{root}: no trial has reported a result yet")
    return sorted(best.values(), key=lambda b: b["family"])
