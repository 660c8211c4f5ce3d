"""benchmarks/common.py: every benchmark script ends as fer's commands do (fer.command)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (REPO / "benchmarks").glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


def _main_block(path: Path) -> ast.If:
    tree = ast.parse(path.read_text())
    return next(node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_every_script_starts_its_main_through_the_shared_entry_point(path):
    last = _main_block(path).body[-1]  # the statement that runs the script
    assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call), f"{path.name}: end with cli(main)"
    assert ast.unparse(last.value.func) == "cli" and ast.unparse(last.value.args[0]) == "main", ast.unparse(last)


def test_a_mistyped_config_path_is_one_line_and_status_2(tmp_path):
    missing = tmp_path / "hour_cnn.yml"
    done = subprocess.run([sys.executable, "-m", "benchmarks.option_cost", "--config", str(missing), "--epochs", "2",
                           "train.mixup=0.2"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"benchmarks.option_cost: error: {missing}: no such config file"]
    assert "Training epoch" not in done.stdout  # checked before anything is measured


def test_a_mistyped_option_is_one_line_named_as_the_script_is_run():
    done = subprocess.run([sys.executable, "-m", "benchmarks.option_cost", "--config", "configs/runs/hour_cnn.yaml",
                           "--epoch", "2"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "benchmarks.option_cost: error: unrecognized arguments: --epoch (see --help)"]  # not taken for --epochs
