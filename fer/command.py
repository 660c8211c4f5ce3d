"""The command-line contract of `python -m fer`, `search` and `analysis`, kept in one place.

Exit status: 0 when the work was done; 1 when it ran but part of it failed (a sweep's failed
trials, a storage that filled up, an output that cannot be written); 2 for bad input, with one
line on stderr naming the file, line, key or option and no traceback; 130 when stopped by Ctrl-C
or SIGTERM. Bugs keep their tracebacks.
"""
from __future__ import annotations

import argparse
import math
import signal
import sys
from collections.abc import Callable

from fer.errors import FerError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `prog: error: argument --x: ...` and exit status 2,
    without the usage block (`--help` still prints it). Options are taken whole only: a prefix
    (`--time-budget` for `--time-budget-s`) is a typo, not a choice."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind: type, low: float, inclusive: bool, what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):  # inf and nan too
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    parse.__name__ = what  # argparse names the type in its messages
    return parse


class LazyChoices:
    """argparse `choices` read only when used: when the option is given, or --help or an error
    shows them. A registry behind them may import torch (1.2 s), which the commands that only read
    files need not pay. Give the option a `metavar`, and `%(choices)s` in its help: argparse
    lists the choices as soon as an option is added unless it has a metavar."""

    def __init__(self, names: Callable[[], list[str]]):
        self.names = names

    def __contains__(self, value) -> bool:
        return value in self.names()

    def __iter__(self):
        return iter(self.names())


positive_int = _number(int, 1, True, "a positive integer")
non_negative_int = _number(int, 0, True, "an integer >= 0")
positive_float = _number(float, 0.0, False, "a positive number")
non_negative_float = _number(float, 0.0, True, "a number >= 0")


_received: list[int] = []  # signals this process was stopped by


def interrupt(signum, frame) -> None:
    """SIGINT and SIGTERM (a scheduler's or `kill`'s stop) unwind as KeyboardInterrupt, and are
    recorded: Python drops an exception raised in a weakref callback or __del__, so a signal that
    lands there would otherwise be lost and the command would finish as if never stopped."""
    _received.append(signum)
    raise KeyboardInterrupt


def catch_interrupts() -> None:
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def raise_if_interrupted() -> None:
    """KeyboardInterrupt if a signal arrived and its exception was dropped: for work that must not
    be left complete-looking after a stop (a report)."""
    if _received:
        raise KeyboardInterrupt


def _quiet_unraisable(unraisable) -> None:
    """The dropped KeyboardInterrupt is not printed as a traceback; other unraisable errors are."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def run_command(prog: str, func: Callable, args) -> int:
    """Run one subcommand under the contract above."""
    _received.clear()  # (a process may run several commands: tests do)
    catch_interrupts()
    sys.unraisablehook = _quiet_unraisable
    out = sys.stdout = _Output(sys.stdout)
    try:
        code = func(args) or EXIT_OK
        out.flush()
    except FerError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        print(f"{prog}: interrupted{f'; {e}' if str(e) else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        if not out.failed:
            raise
        import io

        out.stream = io.StringIO()  # a sink: nothing later fails on the broken output again
        if not isinstance(e, BrokenPipeError):  # (`| head`: the reader had what it wanted, and left)
            print(f"{prog}: error: cannot write to standard output ({e.strerror or e})", file=sys.stderr)
        return EXIT_FAILED
    finally:
        sys.stdout = out.stream  # the stream it was (after a failed write, the sink)
    if _received:  # the signal's exception was dropped (see interrupt)
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


class _Output:
    """Standard output, noting whether a write to it failed (a full disk, `> /dev/full`, a reader
    that left): that OSError is then the output's, not a bug's, and gets one line."""

    def __init__(self, stream):
        self.stream, self.failed = stream, False

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError:
            self.failed = True
            raise

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError:
            self.failed = True
            raise

    def __getattr__(self, name):
        return getattr(self.stream, name)


def console(prog: str, main: Callable[[], int]) -> None:
    """End a console script with `main()`'s status. A Ctrl-C that lands before `run_command` has
    taken over (while Python imports the CLI, torch and Ray: a second or two) ends the command as
    one during it does: one line and status 130, not an import's traceback."""
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    exit_process(code)


EXIT_GRACE_S = 60.0  # how long the atexit handlers may take before the process ends without them


def exit_process(code: int, grace_s: float = EXIT_GRACE_S) -> None:
    """End a console script with `code`: the atexit handlers run (Ray's shutdown, logging's
    flush, Optuna's storage), the streams are flushed, then the process ends without the
    interpreter's teardown. That teardown frees every module and runs the C++ destructors of
    torch's and Ray's libraries one by one; after the main job it took 2.0 s on 2 cores, for
    nothing the command still had to do. A handler that has not returned within `grace_s` (a
    Ray shutdown waiting on a connection a Ctrl-C cut) is left behind, with one line: a stopped
    command ends, with its status, whatever its clean-up waits on."""
    import atexit
    import os
    import threading

    def give_up() -> None:
        _flush(f"the command's clean-up had not ended after {grace_s:g} s; ending without it\n")
        os._exit(code)

    watchdog = threading.Timer(grace_s, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        atexit._run_exitfuncs()
    finally:
        _flush()
        os._exit(code)


def _flush(line: str = "") -> None:
    """Flush both streams (after writing `line` to stderr), whatever state they are in."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if line and stream is sys.stderr:
                stream.write(line)
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) or stream
            pass
