"""User-facing errors: each carries one line that names the file, line or key at fault.

The CLIs print that line on stderr and exit with status 2; anything else is a bug
and keeps its traceback.
"""


class FerError(Exception):
    """Base of every error a user can cause with bad input."""


class DataError(FerError):
    """A data source is missing, empty or malformed."""


class ConfigError(FerError):
    """A config file, override or key is unknown or has the wrong type."""


class CheckpointError(FerError):
    """A checkpoint is truncated, foreign or from an incompatible version."""
