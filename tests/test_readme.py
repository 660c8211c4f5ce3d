"""README's commands are a promise: each `python -m ...` line of its code blocks runs as written,
with relative paths, from the root of a copy of the repository, in README order within its
chain (the commands that read what earlier ones wrote: CHAINS).

Real data is stood in for by a small synthetic file under the README's own name
(`fer2013.csv.gz`); where README asks for hours or many epochs, a few flags appended at the
end (argparse keeps the last value) make it take seconds. The first command, the main job,
runs exactly as written and must be quiet: no tracebacks and no warnings.
"""
import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.factories import write_kaggle

REPO = Path(__file__).resolve().parents[1]
SHORTER = {  # README command prefix -> flags appended to keep it short on the stand-in data
    "python -m search run configs/": ["--num-samples", "2", "--max-epochs", "1", "--grace-period", "1",
                                      "--no-report"],
    "python -m fer train --config configs/runs/seed_": ["--epochs", "1"],
}
CLUSTER = ("--address", "ray://", "/shared/")  # lines that need machines of a cluster


def readme_commands(page: str = "README.md") -> list[str]:
    """Every `python -m` command in the bash blocks of README (or another page), in order, comments cut."""
    text = (REPO / page).read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if "python -m" not in line or any(c in line for c in CLUSTER):
                continue
            command = line[line.index("python -m"):]  # `pip install ... && python -m ...`
            if not command.startswith("python -m pytest"):
                out.append(command)
    return out


def make_checkout(root: Path) -> Path:
    """The tracked files in a fresh folder, with the stand-in data and the two faces README names."""
    from fer.data import SyntheticSpec, make_synthetic

    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    faces = make_synthetic(SyntheticSpec(n_per_class=100, seed=3, split_fractions=(0.4, 0.55, 0.05)))
    plain = write_kaggle(faces, root / "fer2013.csv")  # PublicTest holds 385 faces: --images 356 exists
    (root / "fer2013.csv.gz").write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    Image.fromarray(faces.images[0]).save(root / "face1.jpg")
    Image.fromarray(np.stack([faces.images[1]] * 3, -1)).save(root / "face2.png")
    return root


@pytest.fixture
def checkout(tmp_path):
    return make_checkout(tmp_path)


CHAINS = {  # README's commands fall into chains that read nothing another chain writes (the paths
    # that tie a command to its chain); each chain runs in a checkout of its own, in README order,
    # so the chains are separate tests that run side by side
    "quickstart": ("results/quickstart",),
    "single runs": ("fer summary", "configs/runs/", "runs/cnn"),
    "cnn sweep": ("configs/cnn.yaml", "results/cnn"),
    "dnn sweep": ("configs/dnn.yaml", "results/dnn"),
}


def chain_of(command: str) -> str:
    """The one chain a README command belongs to (the main job, `python -m search run`, starts
    the quickstart chain)."""
    if command == "python -m search run":
        return "quickstart"
    hits = [name for name, keys in CHAINS.items() if any(key in command for key in keys)]
    assert len(hits) == 1, f"README command in {len(hits)} chains of tests/test_readme.py: {command}"
    return hits[0]


def test_readme_lists_the_commands_this_test_shortens():
    commands = readme_commands()
    assert commands[0] == "python -m search run"  # the main job, first
    for prefix in SHORTER:
        assert any(c.startswith(prefix) for c in commands), f"README no longer has {prefix!r}"


def test_every_readme_command_is_in_one_chain():
    chains = [chain_of(c) for c in readme_commands()]
    assert set(chains) == set(CHAINS) and chains[0] == "quickstart"


@pytest.mark.slow
@pytest.mark.parametrize("chain", [pytest.param(c, marks=pytest.mark.xdist_group(f"readme {c}")) for c in CHAINS])
def test_every_readme_command_runs_as_written(chain, checkout, stale_ray_pointer):
    """(With Ray's pointer to the last `ray start` cluster left stale: the main job starts a Ray
    of its own, and never waits on a dead head.)"""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FER_CACHE_DIR": str(checkout / ".cache")}  # a fresh machine's
    env.pop("RAY_ADDRESS", None)
    for command in [c for c in readme_commands() if chain_of(c) == chain]:
        extra = next((v for k, v in SHORTER.items() if command.startswith(k)), [])
        argv = [sys.executable, *shlex.split(command)[1:], *extra]
        done = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
        shown = f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert done.returncode == 0, shown
        assert "Traceback" not in done.stdout + done.stderr, shown
        if command == "python -m search run":
            _check_main_job(checkout, done)


@pytest.mark.slow
def test_the_course_report_is_reproduced_as_written(checkout):
    """docs/course-report.md: both parameter counts, both models trained, the DNN scored, and
    each figure of the course report written, the saliency of image 356 of PublicTest among them."""
    commands = readme_commands("docs/course-report.md")
    assert len(commands) == 7
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FER_CACHE_DIR": str(checkout / ".cache")}
    out = ""
    for command in commands:
        extra = next((v for k, v in SHORTER.items() if command.startswith(k)), [])
        done = subprocess.run([sys.executable, *shlex.split(command)[1:], *extra], cwd=checkout, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        out += done.stdout
    assert "Trainable params: 1,276,606" in out and "Trainable params: 1,276,409" in out
    for family in ("cnn", "dnn"):
        folder = checkout / "course" / family
        written = {f.name for f in folder.iterdir()}
        assert {"confusion_matrix.png", "curves.png", "report.html", "metrics.json"} <= written
    cnn = checkout / "course" / "cnn"
    assert all((cnn / f).exists() for f in ("saliency.png", "filters.png", "activations.png"))
    metrics = json.loads((cnn / "metrics.json").read_text())
    assert [e["images"] for e in metrics["explanations"].values()] == [[356]]
    assert "PublicTest" in (cnn / "report.html").read_text()


def _check_main_job(root: Path, done) -> None:
    from search.results import trials_table

    noisy = [line for line in (done.stdout + done.stderr).splitlines() if "WARNING" in line or "Warning" in line]
    assert not noisy, noisy
    table = trials_table(root / "results" / "quickstart")
    assert (table.groupby("family").size() >= 8).all() and set(table["family"]) == {"cnn", "dnn"}
    assert (table["epochs"] < 4).any()  # ASHA stopped some trials before max_epochs
    assert "stopped by ASHA (rung " in done.stdout
    report = (root / "results" / "quickstart" / "report" / "report.html").resolve()
    assert f"report: {report}" in done.stdout and report.exists()
    metrics = json.loads((report.parent / "metrics.json").read_text())
    assert set(metrics["models"]) == {"best cnn", "best dnn"}
    assert (report.parent / "pareto.png").exists() and len(metrics["pareto"]) == len(table)
    assert all(row["latency_ms"] > 0 for row in metrics["pareto"])
    for family in ("cnn", "dnn"):  # Optuna's figures of each stored study, and fANOVA over its trials
        figures = [report.parent / f"sweep_{family}_{k}.png" for k in ("history", "parallel", "intermediate")]
        assert all(f.exists() for f in figures)
        assert metrics["importance"][family] and (root / "results" / "quickstart" / family / "optuna.db").exists()
