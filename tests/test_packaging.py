"""requirements.txt (README's install command) and pyproject.toml name the same runtime pins."""
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def test_requirements_match_the_project_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    assert [line for line in lines if line and not line.startswith("#")] == project["dependencies"]
    assert not any(name.startswith(("pytest", "ruff")) for name in project["dependencies"])  # tools: the test extra
