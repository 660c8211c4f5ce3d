from fer.command import console


def main() -> int:
    from fer.cli import main  # inside console: a Ctrl-C during the imports ends as one line

    return main()


def entry() -> None:
    """The `fer-model` console script, and `python -m fer`."""
    console("fer", main)


if __name__ == "__main__":
    entry()
