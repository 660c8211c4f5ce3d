"""FER2013 CSV loading: fer's parser against gzip alone and a per-row int() parser.

    python benchmarks/data_loading.py [PATH]
"""
from __future__ import annotations

import csv
import gzip
import sys
import tempfile
import time
import zlib

import numpy as np

from benchmarks.common import SHARED_FER, cli, header, median_time
from fer.data.cache import ArrayCache
from fer.data.csv import load_csv, parse_csv


def gunzip(path):
    with open(path, "rb") as f:
        return gzip.decompress(f.read())


def gunzip_stream(path):
    inflate = zlib.decompressobj(wbits=47)
    with open(path, "rb") as f:
        while block := f.read(1 << 19):
            inflate.decompress(block)


def per_row_int(path):
    """What common loaders do: csv rows, then int() on every pixel string."""
    with gzip.open(path, "rt") as f:
        rows = list(csv.reader(f))[1:]
    return np.array([[int(v) for v in r[1].split()] for r in rows], np.uint8)


def main(path: str) -> None:
    header("Data loading")
    t_gzip = median_time(lambda: gunzip(path))
    t_stream = median_time(lambda: gunzip_stream(path))
    t_fer = median_time(lambda: parse_csv(path))
    with tempfile.TemporaryDirectory() as d:
        cache = ArrayCache(d)
        load_csv(path, cache)
        t_cached = median_time(lambda: load_csv(path, cache))
    t = time.perf_counter()
    ref = per_row_int(path)
    t_int = time.perf_counter() - t
    ours = parse_csv(path)["images"].reshape(len(ref), -1)
    assert np.array_equal(ref, ours), "fer's parser disagrees with int()"
    print("| step | seconds | vs gzip.decompress |\n| --- | --- | --- |")
    for name, t in [("gzip.decompress alone", t_gzip), ("streaming zlib decompress alone", t_stream),
                    ("fer parse_csv (decompress + parse, no cache)", t_fer),
                    ("fer load_csv, cached (hash + read arrays)", t_cached),
                    ("csv module + per-row int()", t_int)]:
        print(f"| {name} | {t:.2f} | {t / t_gzip:.2f}x |")
    print(f"\n{len(ours)} rows; fer's arrays equal the int() parser's. Median of 3 runs (int(): 1 run).\n")


if __name__ == "__main__":
    cli(main, sys.argv[1] if len(sys.argv) > 1 else str(SHARED_FER))
