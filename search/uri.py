"""Where an experiment, a study or a warm-start source lives: a local (or mounted) folder, or a
URI (s3://, gs://, postgresql://, sqlite:///...). Light to import: the CLI asks before Ray loads."""
from __future__ import annotations


def is_local(location: str) -> bool:
    return "://" not in location
