"""benchmarks/suite_cpu.py: processes sorted by kind, and a command's CPU read while it runs."""
import sys

from benchmarks.suite_cpu import kind, main, sample


def test_each_process_is_sorted_by_its_command_line():
    assert kind("ray::ImplicitFunc.train") == "Tune trial workers"
    assert kind("/usr/bin/python -m search run configs/cnn.yaml") == "search drivers"
    assert kind(".../ray/core/src/ray/gcs/gcs_server --log_dir=/tmp/ray") == "Ray's own processes"
    assert kind("python -c 'import sys; exec(...)' xdist") == "pytest workers"
    assert kind("/usr/bin/sleep 1") == "other"


def test_a_commands_cpu_is_read_while_it_runs(capsys):
    busy = [sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass"]
    seconds, counts, wall, code = sample(busy, every_s=0.1)
    assert code == 0 and counts == {"other": 1} and 0.7 <= seconds["other"] <= wall + 0.5
    assert main(["--", sys.executable, "-c", "raise SystemExit(3)"]) == 3  # the command's exit status
    assert "| all |" in capsys.readouterr().out
