"""Where an experiment, a study or a warm-start source lives: a local (or mounted) folder, or a
URI (s3://, gs://, postgresql://, sqlite:///...); and what a trial's folder inside an
experiment is named. Light to import: the CLI asks before Ray loads."""
from __future__ import annotations

import re

from fer.remote import is_database, is_local  # noqa: F401  (one test of where a thing lives, in fer)

TRIAL_PREFIX = "trial_"  # Tune's trial folders are named by search.sweep's trial_dirname_creator


def trial_folder(trial_id: str) -> str:
    """The name of a trial's folder in its experiment."""
    return f"{TRIAL_PREFIX}{trial_id}"


def trial_id_of(folder: str) -> str:
    """The trial id a trial folder's name holds."""
    return folder.removeprefix(TRIAL_PREFIX)


NAME = re.compile(r"[A-Za-z0-9._-]+")  # an experiment's or a sweep's name: one folder, never a path


def check_name(name: str, what: str) -> str:
    """`name` as given, or a one-line FerError: names become folders inside the storage path."""
    from fer.errors import FerError

    if not isinstance(name, str) or not NAME.fullmatch(name) or name in (".", ".."):
        raise FerError(f"{what}: {name!r} is not a name: letters, digits, '.', '_' and '-' only, one folder "
                       "(never '..' or a path)")
    return name
