"""The command-line contract: a stop whose KeyboardInterrupt Python dropped (it landed in a
weakref callback or __del__) still ends the command with exit 130, and is not printed as a traceback."""
import shlex
import signal
import weakref

import pytest

from fer.command import EXIT_FAILED, EXIT_INTERRUPTED, run_command


class _Dropped:
    pass


def test_a_signal_whose_exception_python_dropped_still_stops_the_command(capsys):
    went_on = []

    def work(args):
        obj = _Dropped()
        weakref.finalize(obj, lambda: signal.getsignal(signal.SIGINT)(signal.SIGINT, None))
        del obj  # the handler runs in the finalizer: Python drops its KeyboardInterrupt
        went_on.append(True)
        return 0

    assert run_command("fer", work, None) == EXIT_INTERRUPTED and went_on  # the work had gone on
    err = capsys.readouterr().err
    assert err == "fer: interrupted\n"  # no "Exception ignored ... Traceback"
    assert run_command("fer", lambda args: 0, None) == 0  # the next command starts afresh


def test_exit_process_runs_the_atexit_handlers_flushes_and_keeps_the_status(tmp_path):
    """Console scripts end through exit_process: nothing registered with atexit may be lost,
    nor an unflushed line of output, and the status is the command's."""
    import subprocess
    import sys

    marker = tmp_path / "atexit-ran"
    script = ("import atexit, pathlib, sys\n"
              f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
              "from fer.command import exit_process\n"
              "print('to stdout', end='')\n"
              "sys.stderr.write('to stderr')\n"
              "exit_process(3)\n"
              "print('never')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stdout == "to stdout" and done.stderr == "to stderr"
    assert marker.read_text() == "yes"


def test_exit_process_ends_with_the_status_when_a_clean_up_hangs():
    """An atexit handler that never returns (a shutdown waiting on a connection a Ctrl-C cut)
    must not keep a stopped command alive: it ends after the grace, with its status and one line."""
    import subprocess
    import sys

    script = ("import atexit, threading\n"
              "atexit.register(threading.Event().wait)\n"
              "from fer.command import exit_process\n"
              "exit_process(130, grace_s=0.5)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130
    assert done.stderr == "the command's clean-up had not ended after 0.5 s; ending without it\n"


def test_an_output_that_cannot_be_written_is_one_line_and_exit_1(monkeypatch, capsys):
    """`search table ... > /dev/full`: the table cannot be written; one line says so, no traceback."""
    with open("/dev/full", "w") as full:
        monkeypatch.setattr("sys.stdout", full)
        assert run_command("search", lambda args: print("x" * 100_000), None) == EXIT_FAILED
    assert capsys.readouterr().err == "search: error: cannot write to standard output (No space left on device)\n"

    def bug(args):
        raise FileNotFoundError(2, "a bug's own error")

    with open("/dev/null", "w") as null:
        monkeypatch.setattr("sys.stdout", null)
        with pytest.raises(FileNotFoundError):  # an OSError that is not the output's keeps its traceback
            run_command("search", bug, None)


def test_a_reader_that_leaves_ends_the_command_quietly(tmp_path):
    """`search table ... | head -1`: head has its line and closes the pipe; the command stops
    writing and exits 1 (the contract's "output not written") without a line of its own."""
    import subprocess
    import sys

    script = ("from fer.command import run_command, exit_process\n"
              "exit_process(run_command('search', lambda args: [print(i) for i in range(10 ** 6)], None))\n")
    done = subprocess.run(f"{sys.executable} -c {shlex.quote(script)} | head -1; echo \"${{PIPESTATUS[0]}}\"",
                          shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["0", "1"] and done.stderr == ""


@pytest.mark.parametrize("package", ["fer", "search", "analysis"])
def test_a_ctrl_c_before_the_command_starts_is_one_line_and_exit_130(package):
    """A Ctrl-C while the console script still imports its CLI (torch, Ray: a second or two, before
    run_command takes over) ends it as a Ctrl-C during the command does, without a traceback."""
    import subprocess
    import sys

    script = ("import importlib, os, signal, sys, time\n"
              f"cli = importlib.import_module('{package}.cli')\n"
              "def building(*args, **kwargs):  # the parser's imports, cut by a Ctrl-C\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n"
              "    time.sleep(30)\n"
              "cli._parser = building\n"
              f"sys.argv = ['{package}', '--help']\n"
              f"importlib.import_module('{package}.__main__').entry()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_INTERRUPTED and done.stderr == f"{package}: interrupted\n", done.stderr[-2000:]
