"""Shared bits of the benchmarks: the machine description, result logging, and the entry point and
argument parser that give every script the command contract of fer (fer.command)."""
from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

SHARED_FER = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013.csv.gz"


def machine() -> str:
    import torch  # (here: this module is light to import, for suite_cpu's pytest plugin)

    return (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads)")


def header(title: str, argv: list[str] | None = None, prog: str | None = None) -> None:
    """The title, the command as typed (`prog` and `argv`, default sys.argv's) and the machine, CPU
    model and bf16 flag first: a speed figure is read against the CPU that gave it (AVX2 only
    emulates bf16)."""
    from fer.speed import cpu_bf16_flag, cpu_model

    prog = prog or _prog()
    command = " ".join([f"python -m {prog}", *(sys.argv[1:] if argv is None else argv)])
    print(f"## {title}\n\n`{command}` on {cpu_model()} ({cpu_bf16_flag() or 'no bf16 flag'}), {machine()}, "
          f"{time.strftime('%Y-%m-%d')}\n")


def _prog() -> str:
    return "benchmarks." + Path(sys.argv[0]).stem


def parser(**kwargs):
    """fer's argument parser (fer.command.Parser: a bad option is one line and status 2, no
    abbreviated options), named as the script is run: `benchmarks.NAME`."""
    from fer.command import Parser

    return Parser(**{"prog": _prog(), **kwargs})


def cli(main, *args) -> None:
    """A benchmark's entry point, under the contract of `fer`'s commands (fer.command): bad input
    that fer names (a mistyped config path, an unknown key) is one line, `benchmarks.NAME: error:
    ...`, and status 2; Ctrl-C or SIGTERM is one line and status 130; a bug keeps its traceback."""
    from fer.command import console, run_command

    prog = _prog()
    console(prog, lambda: run_command(prog, lambda _: main(*args), None))


def median_time(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def write_kaggle(path: Path, images, labels, usages) -> Path:
    """Faces as a Kaggle FER2013 CSV (`emotion,pixels,Usage`), gzipped when the name ends in .gz;
    written beside and renamed into place, so a stopped write leaves no half file under `path`."""
    import gzip

    tmp = path.with_name(path.name + ".tmp")
    with (gzip.open(tmp, "wt") if path.suffix == ".gz" else open(tmp, "w")) as f:
        f.write("emotion,pixels,Usage\n")
        for img, label, usage in zip(images, labels, usages):
            f.write(f"{label},{' '.join(map(str, img.ravel()))},{usage}\n")
    tmp.rename(path)
    return path
