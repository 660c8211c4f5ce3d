"""The order in which pytest-xdist hands out the suite's groups: the longest first.

Under `--dist loadgroup` each test module (or a test's own `xdist_group`) is one unit of work,
given to whichever worker is nearly out of work, in the order of the collection. Longest first
(LPT scheduling) leaves the short groups for the end, where they fill the gaps, instead of one
worker running a two-minute group alone while the other has finished. The lengths come from
tests/durations.json, each group's seconds in a recorded run of the whole suite:

    python -m pytest -q --store-durations      # runs the suite, then rewrites tests/durations.json

A group missing there (a new module) is estimated from its number of slow tests.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
SLOW_TEST_S, FAST_TEST_S = 20.0, 0.1  # the estimate for a group not in DURATIONS


def group_of(nodeid: str) -> str:
    """A report's group: xdist appends "@group" to the node ids it schedules by group; without
    xdist, the module (tests/fer/test_csv.py::test_x -> tests.fer.test_csv)."""
    if "@" in nodeid:
        return nodeid.rsplit("@", 1)[1]
    return nodeid.split("::")[0].removesuffix(".py").replace("/", ".")


def pytest_addoption(parser):
    parser.addoption("--store-durations", action="store_true",
                     help=f"after the run, write each group's seconds to {DURATIONS.name} (the order of later runs)")


def costs(tests: list[tuple[str, bool]], recorded: dict[str, float]) -> dict[str, float]:
    """Each group's expected seconds, from (group, slow?) per test: as recorded, else estimated."""
    count, slow = Counter(g for g, _ in tests), Counter(g for g, is_slow in tests if is_slow)
    return {g: recorded.get(g, SLOW_TEST_S * slow[g] + FAST_TEST_S * n) for g, n in count.items()}


@pytest.hookimpl(trylast=True)  # after tests/conftest.py has given every item its group
def pytest_collection_modifyitems(config, items):
    group = lambda item: item.get_closest_marker("xdist_group").args[0]  # noqa: E731
    recorded = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    cost = costs([(group(item), item.get_closest_marker("slow") is not None) for item in items], recorded)
    items.sort(key=lambda item: -cost[group(item)])  # stable: each group keeps its order


class DurationRecorder:
    """Sums each group's setup, call and teardown seconds as reports arrive (on the controller
    under xdist) and writes them when the session ends."""

    def __init__(self):
        self.seconds: Counter = Counter()

    def pytest_runtest_logreport(self, report):
        self.seconds[group_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session, exitstatus):
        if self.seconds and not hasattr(session.config, "workerinput"):  # the controller, or the one process
            text = json.dumps({g: round(s, 1) for g, s in sorted(self.seconds.items())}, indent=0)
            DURATIONS.write_text(text + "\n")


def pytest_configure(config):
    if config.getoption("--store-durations"):
        config.pluginmanager.register(DurationRecorder(), "duration-recorder")
