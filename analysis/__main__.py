import sys

from analysis.cli import main


def entry() -> None:
    """The `fer-analysis` console script, and `python -m analysis`."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
