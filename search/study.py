"""The sweep's Optuna study, kept in a database so that it outlives the driver: by default an
SQLite file in the experiment folder (`optuna.db`), or any SQLAlchemy URL (`--optuna-storage`,
on a cluster a PostgreSQL server the head node reaches). optuna-dashboard, the report's plots
and a later sweep's warm start (search.warmstart) read it. The searcher that writes it during a
sweep is search.searcher's StudySearch; this module opens, checks, publishes and closes studies,
and imports no Ray (the reading commands use it).
"""
from __future__ import annotations

import re
import shutil
import sys
import warnings
from pathlib import Path

import optuna

from fer.errors import FerError
from search.results import STUDY_FILE, dedupe_epochs, epoch_column, epochs_run
from search.uri import is_local, trial_id_of


def default_url(experiment: str) -> str:
    """SQLite in the experiment folder; for an experiment at a storage URI (s3://...), which cannot
    hold a live SQLite file, SQLite in a staging folder of the driver (`staged_study`), copied to
    the experiment as optuna.db when each sweep ends (`publish_study`)."""
    if is_local(experiment):
        return f"sqlite:///{Path(experiment).resolve() / STUDY_FILE}"
    return f"sqlite:///{staged_study(experiment)}"


def staged_study(experiment: str) -> Path:
    """The driver's working copy of a URI experiment's study: in the cache, keyed by the URI. A
    resume on another machine (or after the cache was cleared) starts from the published copy."""
    import hashlib

    from fer.remote import cache_root, local_file, location

    local = cache_root() / "studies" / hashlib.sha256(experiment.encode()).hexdigest()[:32] / STUDY_FILE
    published = location(experiment) / STUDY_FILE
    if not local.exists() and published.exists():
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_file(published), local)
    return local


def publish_study(url: str, experiment: str) -> None:
    """Copy a staged study (`default_url` of a URI experiment) to the experiment as optuna.db, in
    one object write, so that readers of the experiment find it as they do in a local folder."""
    if is_local(experiment) or not url.startswith("sqlite:///"):
        return
    import pyarrow
    import pyarrow.fs

    local = url.removeprefix("sqlite:///")
    try:
        fs, root = pyarrow.fs.FileSystem.from_uri(experiment)
        with fs.open_output_stream(f"{root}/{STUDY_FILE}") as f, open(local, "rb") as src:
            shutil.copyfileobj(src, f, 1 << 22)
    except (OSError, pyarrow.ArrowException) as e:  # the sweep's own outcome stands; the study is not lost
        print(f"search: could not copy the study to {experiment}/{STUDY_FILE} ({str(e).splitlines()[0]}); it is "
              f"kept at {local}", file=sys.stderr, flush=True)


# scheme://user:PASSWORD@ (as SQLAlchemy parses it: the password runs to the first "@", "/" and ":"
# included), and a password given in the query string (?password=... or &password=...)
SECRET_IN_URL = re.compile(r"(\b[A-Za-z][\w+.-]*://[^\s:/@]*:)([^\s@]+)(@)")
SECRET_IN_QUERY = re.compile(r"(\b[A-Za-z][\w+.-]*://\S*?[?&]password=)([^&\s]*)", re.I)


def mask_passwords(text: str) -> str:
    """`text` with the password of every URL in it hidden, for messages and the resume line."""
    return SECRET_IN_QUERY.sub(r"\1***", SECRET_IN_URL.sub(r"\1***\3", text))


def without_password(url: str) -> tuple[str, str | None]:
    """(the URL without its password, the password): what files may hold, and what stays in memory."""
    from sqlalchemy.engine import URL, make_url

    try:
        parsed = make_url(url)
    except Exception:  # not an SQLAlchemy URL: open_storage says why
        return url, None
    in_query = {k: v for k, v in parsed.query.items() if k.lower() == "password"}
    if parsed.password is None and not in_query:
        return url, None
    query = {k: v for k, v in parsed.query.items() if k not in in_query}
    bare = URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database,
                      query)  # (URL.set(password=None) leaves the password as it was)
    password = parsed.password if parsed.password is not None else next(iter(in_query.values()))
    return bare.render_as_string(hide_password=False), str(password if isinstance(password, str) else password[0])


class StudyStorage(optuna.storages.RDBStorage):
    """Optuna's RDBStorage, whose pickled copies hold no password. Tune saves the searcher, and
    this storage inside it, in searcher-state-*.pkl and tuner.pkl; those hold the URL without its
    password. A copy unpickled by a resumed sweep connects as the database driver does without
    one (PostgreSQL's PGPASSWORD or ~/.pgpass): `search run` takes no password in a study URL
    (search.cli.refuse_passwords), so no process holds one to hand it."""

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        connect = {k: v for k, v in state["engine_kwargs"].get("connect_args", {}).items() if k != "password"}
        state["engine_kwargs"] = {**state["engine_kwargs"], "connect_args": connect}
        return state


def open_storage(url: str) -> StudyStorage:
    """Optuna's RDB storage at url; a bad URL, a missing driver or a server that does not answer
    is one line naming the URL (password hidden). A password in the URL is handed to the database
    driver directly and kept in this process's memory only (StudyStorage)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    bare, password = without_password(url)
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    if password is not None:
        kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "password": password}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return StudyStorage(bare, engine_kwargs=kwargs)
    except Exception as e:  # SQLAlchemy raises ArgumentError, OperationalError, ModuleNotFoundError, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise FerError(f"optuna storage {mask_passwords(url)}: cannot open it ({mask_passwords(reason)})") from None


def holds_study(url: str, name: str, storage=None) -> bool:
    """Whether the storage holds a study of this name."""
    return name in optuna.get_all_study_names(storage or open_storage(url))


def refuse_existing_study(url: str, name: str, storage=None) -> None:
    """A new sweep's study name must be free: a one-line error when the storage holds it."""
    if holds_study(url, name, storage):
        raise FerError(f"optuna storage {mask_passwords(url)}: already holds a study named {name!r}: continue it with "
                       "--resume, or start another with --name")


def prepare_study(url: str, name: str, space, resume: bool, imported: list | None = None):
    """Create the study (or, with resume, find it), with the sweep's family and metric as study
    attributes; a new study first receives `imported` trials (search.warmstart)."""
    storage = open_storage(url)
    if not resume:
        refuse_existing_study(url, name, storage)
    exists = holds_study(url, name, storage)
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
    if not exists:
        study.set_user_attr("family", space.family)
        study.set_user_attr("metric", space.settings.metric)
        study.add_trials(imported or [])
    return storage


def finish_study(storage, name: str, grid, metric: str) -> tuple[int, int]:
    """Once a sweep has ended, the study trials still RUNNING. Tune stops the trials still running
    at its time budget without telling its searcher: each is completed here with its best epoch
    and kept checkpoint, as StudySearch does. One without a reported epoch is marked FAIL: a
    trial cut before its first epoch, or one no Tune trial matches, suggested just before a driver
    was killed and after Tune's last snapshot (the resumed sweep ran a fresh trial in its place).
    Returns (completed, failed)."""
    study = optuna.load_study(study_name=name, storage=storage)
    study_id = storage.get_study_id_from_name(name)
    results = {trial_id_of(Path(r.path).name): r for r in grid}
    done = failed = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        r = results.get(t.user_attrs.get("tune_trial_id"))
        h = dedupe_epochs(r.metrics_dataframe) if r is not None else None
        if h is None or metric not in h or not len(h):
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            failed += 1
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        for step, value in zip(h[epoch_column(h)], h[metric]):
            storage.set_trial_intermediate_value(trial_id, int(step), float(value))
        # an epoch reported as the budget ended can come without its checkpoint (Tune stopped the
        # trial before persisting it): the trial completes with its score and no checkpoint
        kept = r.get_best_checkpoint(metric, "max") if r.best_checkpoints else None
        attrs = {"epochs": epochs_run(h), "stopped_by": "stopped by the sweep's time budget",
                 "num_params": int(h["num_params"].iloc[-1]) if "num_params" in h else None,
                 "checkpoint": str(Path(kept.path) / "checkpoint.pt") if kept is not None else None}
        for key, value in attrs.items():
            if value is not None:
                storage.set_trial_user_attr(trial_id, key, value)
        study.tell(t.number, float(h[metric].max()))
        done += 1
    return done, failed
