from fer.cli import main
from fer.command import exit_process


def entry() -> None:
    """The `fer-model` console script, and `python -m fer`."""
    exit_process(main())


if __name__ == "__main__":
    entry()
