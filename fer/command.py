"""The command-line contract of `python -m fer`, `search` and `analysis`, kept in one place.

Exit status: 0 when the work was done; 1 when it ran but part of it failed (a sweep's failed
trials, a storage that filled up); 2 for bad input, with one line on stderr naming the file,
line, key or option and no traceback; 130 when stopped by Ctrl-C or SIGTERM. Bugs keep their
tracebacks.
"""
from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable

from fer.errors import FerError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `prog: error: argument --x: ...` and exit status 2,
    without the usage block (`--help` still prints it)."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind: type, low: float, inclusive: bool, what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _number(int, 1, True, "a positive integer")
positive_float = _number(float, 0.0, False, "a positive number")
non_negative_float = _number(float, 0.0, True, "a number >= 0")


def sigterm_as_interrupt() -> None:
    """SIGTERM (a scheduler's or `kill`'s stop) unwinds like Ctrl-C: KeyboardInterrupt, exit 130."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def run_command(prog: str, func: Callable, args) -> int:
    """Run one subcommand under the contract above."""
    sigterm_as_interrupt()
    try:
        return func(args) or EXIT_OK
    except FerError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        print(f"{prog}: interrupted{f'; {e}' if str(e) else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
