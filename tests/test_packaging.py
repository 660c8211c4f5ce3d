"""requirements.txt (README's install command) and pyproject.toml name the same runtime pins."""
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]


def test_requirements_match_the_project_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    assert [line for line in lines if line and not line.startswith("#")] == project["dependencies"]
    assert not any(name.startswith(("pytest", "ruff")) for name in project["dependencies"])  # tools: the test extra


@pytest.mark.slow  # a venv, an install and a sweep
def test_a_non_editable_install_runs_the_main_job_from_another_folder(tmp_path):
    """`pip install .` into a fresh venv (its dependencies from this environment's site-packages;
    the build backend from the registry, as pip fetches it, cached after the first run), then
    `fer-search run` from an unrelated folder: the default space ships inside the package."""
    import os
    import subprocess
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    build = tmp_path / "src"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():
        if (REPO / name).is_file():
            (build / name).parent.mkdir(parents=True, exist_ok=True)
            (build / name).write_bytes((REPO / name).read_bytes())
    done = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(build)],  # builds as pip does
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    run = subprocess.run([venv / "bin" / "fer-search", "run", "--num-samples", "1", "--max-epochs", "1",
                          "--grace-period", "1", "--no-report", "--storage-path", "results"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (elsewhere / "results" / "quickstart" / "cnn" / "sweep.json").exists()
    where = subprocess.run([python, "-c", "import search; print(search.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert str(venv) in where  # the installed copy ran, not this checkout
