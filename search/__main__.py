"""`python -m search`: the main job, a sweep then its analysis report.

The one place where search and analysis meet: search never imports analysis (analysis reads
experiments through search.results), so the report is handed to the CLI from here.
"""
import threading
from pathlib import Path

from fer.command import console


def _import_analysis() -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only (analysis.plots)
    import analysis.report  # noqa: F401


class Report:
    """The report that ends `run`. `prepare()` imports the analysis stack (matplotlib, captum,
    scikit-learn: about 2 s on a 2-core CPU) in a thread while the sweeps run, when the driver
    mostly waits on Ray, instead of after them; an import that fails there fails again, with its
    message, when the report is written."""

    def __init__(self):
        self.importing: threading.Thread | None = None

    def prepare(self) -> None:
        def quietly():
            try:
                _import_analysis()
            except Exception:  # noqa: BLE001 - raised again, in the main thread, by __call__
                pass
        self.importing = threading.Thread(target=quietly, name="import-analysis", daemon=True)
        self.importing.start()

    def __call__(self, experiment: str, out: Path, study_storage: str | None = None) -> None:
        if self.importing is not None:
            self.importing.join()
        _import_analysis()
        from analysis.report import make_report

        make_report(experiment, out=out, study_storage=study_storage)


def entry() -> None:
    """The `fer-search` console script, and `python -m search`."""
    def main() -> int:
        from search.cli import main  # inside console: a Ctrl-C during the imports ends as one line

        return main(report=Report())

    console("search", main)


if __name__ == "__main__":
    entry()
