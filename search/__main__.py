"""`python -m search`: the main job, a sweep then its analysis report.

The one place where search and analysis meet: search never imports analysis (analysis reads
experiments through search.results), so the report is handed to the CLI from here.
"""
import sys
from pathlib import Path

from search.cli import main


def report(experiment: str, out: Path, study_storage: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only (analysis.plots)
    from analysis.report import make_report

    make_report(experiment, out=out, study_storage=study_storage)


def entry() -> None:
    """The `fer-search` console script, and `python -m search`."""
    sys.exit(main(report=report))


if __name__ == "__main__":
    entry()
