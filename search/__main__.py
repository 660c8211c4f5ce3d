"""`python -m search`: the main job, a sweep then its analysis report.

The one place where search and analysis meet: search never imports analysis (analysis reads
experiments through search.results), so the report is handed to the CLI from here.
"""
from pathlib import Path

from fer.command import exit_process
from search.cli import main


def report(experiment: str, out: Path, study_storage: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only (analysis.plots)
    from analysis.report import make_report

    make_report(experiment, out=out, study_storage=study_storage)


def entry() -> None:
    """The `fer-search` console script, and `python -m search`."""
    exit_process(main(report=report))


if __name__ == "__main__":
    entry()
