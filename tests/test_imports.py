"""Imports run one way: fer <- search <- analysis. fer needs neither Ray nor Optuna (it runs
alone on GPU machines with only PyTorch), and search never imports analysis except in
search/__main__.py, the one place that runs the main job (a sweep, then its report)."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {"fer": {"search", "analysis", "ray", "optuna"}, "search": {"analysis"}, "analysis": set()}
MAIN_JOB = REPO / "search" / "__main__.py"


def imported(path: Path) -> set[str]:
    """Top-level package names a module imports, at module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_one_above_it(package):
    wrong = {str(p.relative_to(REPO)): sorted(imported(p) & FORBIDDEN[package])
             for p in (REPO / package).rglob("*.py") if p != MAIN_JOB and imported(p) & FORBIDDEN[package]}
    assert not wrong


def test_the_main_job_is_the_one_place_that_joins_search_and_analysis():
    assert {"search", "analysis"} <= imported(MAIN_JOB)
