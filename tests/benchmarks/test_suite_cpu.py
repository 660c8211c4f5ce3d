"""benchmarks/suite_cpu.py: processes sorted by kind, and a command's CPU read while it runs."""
import sys
from pathlib import Path

from benchmarks.suite_cpu import kind, main, per_test, sample, worker_of

REPO = Path(__file__).resolve().parents[2]


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


def test_a_tests_cpu_is_its_workers_between_its_start_and_end():
    assert worker_of({"TMPDIR": "/tmp/fer-gw3-x1y2"}) == "gw3" and worker_of({"TMPDIR": "/tmp"}) is None
    events = [{"event": "start", "test": "t::a", "worker": "gw0", "pid": 10, "t": 1.0},
              {"event": "start", "test": "t::a", "worker": "main", "pid": 9, "t": 1.1},  # the controller's echo
              {"event": "start", "test": "t::b", "worker": "gw1", "pid": 11, "t": 1.0},
              {"event": "end", "test": "t::a", "worker": "gw0", "pid": 10, "t": 3.0},
              {"event": "end", "test": "t::a", "worker": "main", "pid": 9, "t": 3.1},
              {"event": "end", "test": "t::b", "worker": "gw1", "pid": 11, "t": 5.0}]
    ticks = [(0.5, {"gw0": 9.0}), (2.0, {"pid:10": 1.0, "gw0": 0.5, "gw1": 2.0, "pid:9": 0.1}),
             (3.0, {"gw0": 0.25, "gw1": 1.0}), (4.0, {"gw0": 7.0, "gw1": 1.0})]
    found = per_test(ticks, events)
    assert found == {"t::a": (1.75, 2.0), "t::b": (4.0, 4.0)}  # before its start and after its end: not its


def test_per_test_runs_pytest_with_the_plugin_and_ranks_its_tests(tmp_path, monkeypatch, capsys):
    (tmp_path / "test_burn.py").write_text(
        "import time\n\ndef test_burns():\n    t = time.process_time()\n"
        "    while time.process_time() - t < 2.0: pass\n\ndef test_idles():\n    time.sleep(1.0)\n")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    argv = ["--per-test", "5", "--", sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider",
            str(tmp_path / "test_burn.py")]
    assert main(argv) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if "test_burn.py::" in line]
    assert [r[0].rsplit("::")[-1] for r in rows] == ["test_burns", "test_idles"]  # largest CPU first
    # a reading every 0.3 s, so the edges blur by a reading or two (0.5 CPU-s seen for the idle one
    # on a loaded machine): 2 CPU-s against at most 1
    assert float(rows[0][1]) >= 1.5 and float(rows[1][1]) < 1.0
