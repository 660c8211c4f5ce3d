"""README's first command: `python -m search run` on the built-in data, report included."""
import json
import subprocess
import sys
from pathlib import Path

from search.results import trials_table

REPO = Path(__file__).resolve().parents[2]


def test_quickstart_runs_both_families_and_writes_the_report(tmp_path):
    done = subprocess.run([sys.executable, "-m", "search", "run", "--storage-path", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = trials_table(tmp_path / "quickstart")
    assert (table.groupby("family").size() >= 8).all() and set(table["family"]) == {"cnn", "dnn"}
    assert (table["epochs"] < 4).any()  # ASHA stopped some trials before max_epochs
    report = tmp_path / "quickstart" / "report" / "report.html"
    assert f"report: {report}" in done.stdout and report.exists()
    metrics = json.loads((report.parent / "metrics.json").read_text())
    assert set(metrics["models"]) == {"best cnn", "best dnn"}
