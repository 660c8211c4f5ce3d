import sys

from fer.cli import main


def entry() -> None:
    """The `fer-model` console script, and `python -m fer`."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
