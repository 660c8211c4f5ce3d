from fer.command import console


def main() -> int:
    from analysis.cli import main  # inside console: a Ctrl-C during the imports ends as one line

    return main()


def entry() -> None:
    """The `fer-analysis` console script, and `python -m analysis`."""
    console("analysis", main)


if __name__ == "__main__":
    entry()
