from analysis.cli import main
from fer.command import exit_process


def entry() -> None:
    """The `fer-analysis` console script, and `python -m analysis`."""
    exit_process(main())


if __name__ == "__main__":
    entry()
