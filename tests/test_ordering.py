"""tests/ordering.py: which group a report belongs to, and what each group is expected to cost."""
from tests.ordering import FAST_TEST_S, SLOW_TEST_S, costs, group_of


def test_a_report_names_its_group_under_xdist_and_its_module_without():
    assert group_of("tests/test_readme.py::test_x[quickstart]@readme quickstart") == "readme quickstart"
    assert group_of("tests/fer/test_csv.py::test_y@tests.fer.test_csv") == "tests.fer.test_csv"
    assert group_of("tests/fer/test_csv.py::test_y[a-b]") == "tests.fer.test_csv"


def test_a_recorded_group_costs_its_seconds_and_a_new_one_is_estimated_from_its_slow_tests():
    found = costs([("old", False), ("new", True), ("new", False), ("new", True)], {"old": 99.0, "gone": 5.0})
    assert found == {"old": 99.0, "new": 2 * SLOW_TEST_S + 3 * FAST_TEST_S}
