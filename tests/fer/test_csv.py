import gzip

import numpy as np
import pytest

import fer.data.csv
from fer.data import load_data
from fer.data.cache import ArrayCache
from fer.data.csv import load_csv
from fer.errors import DataError
from tests.conftest import SHARED_FER
from tests.factories import kaggle_rows


@pytest.mark.parametrize("name", ["data.csv", "data.csv.gz"])
def test_kaggle_csv_round_trips(write_csv, name):
    text, images, labels = kaggle_rows(5)
    faces = load_data(str(write_csv(text, name)))
    np.testing.assert_array_equal(faces.images, images)
    np.testing.assert_array_equal(faces.labels, labels)
    assert faces.split.tolist() == [0, 1, 0, 1, 0]
    assert len(faces.select("validation")) == 2


def test_edge_values_and_crlf(write_csv):
    text, images, labels = kaggle_rows(3)
    images[0, 0, :4] = [0, 9, 10, 255]
    lines = text.splitlines()
    lines[1] = f"{labels[0]},{' '.join(map(str, images[0].ravel()))},Training"
    faces = load_data(str(write_csv("\r\n".join(lines) + "\r\n")))
    np.testing.assert_array_equal(faces.images[0, 0, :4], [0, 9, 10, 255])
    np.testing.assert_array_equal(faces.images, images)


def test_course_formats(write_csv):
    _, images, labels = kaggle_rows(4)
    rows = [f"{labels[i]},{' '.join(map(str, images[i].ravel()))}" for i in range(4)]
    faces = load_data(str(write_csv("label,feature\n" + "\n".join(rows) + "\n")))
    np.testing.assert_array_equal(faces.labels, labels)
    assert faces.split is None
    ids = [f"{1000 + i},{' '.join(map(str, images[i].ravel()))}" for i in range(4)]
    unlabelled = load_data(str(write_csv("id,feature\n" + "\n".join(ids), "test.csv")))
    assert unlabelled.labels is None
    np.testing.assert_array_equal(unlabelled.images, images)


def _corrupt(row_text: str) -> str:
    text, _, _ = kaggle_rows(3)
    lines = text.splitlines()
    lines[2] = row_text.format(pixels=lines[2].split(",")[1])
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("row, message", [
    ("3,{pixels} 7,Training", "line 3: expected 2304 pixels, found 2305"),
    ("3,1 2 3,Training", "line 3: expected 2304 pixels, found 3"),
    ("9,{pixels},Training", "line 3: label '9' is not an integer in 0-6"),
    ("x,{pixels},Training", "line 3: label 'x' is not an integer in 0-6"),
    ("3,{pixels},Holdout", "line 3: unknown Usage 'Holdout'"),
    ("3,{pixels}", "line 3: expected 3 comma-separated fields, found 2"),
])
def test_bad_rows_name_the_line(write_csv, row, message):
    with pytest.raises(DataError, match=message):
        load_data(str(write_csv(_corrupt(row))))


@pytest.mark.parametrize("bad, message", [("256", "out of range"), ("1000", "out of range"),
                                          ("-3", "not an integer"), ("12.5", "not an integer"),
                                          ("abc", "not an integer")])
def test_bad_pixel_values(write_csv, bad, message):
    text, images, labels = kaggle_rows(3)
    pixels = " ".join(map(str, images[1].ravel())).split(" ")
    pixels[100] = bad
    row = f"{labels[1]},{' '.join(pixels)},PublicTest"
    lines = text.splitlines()
    lines[2] = row
    with pytest.raises(DataError, match=f"line 3: .*{message}"):
        load_data(str(write_csv("\n".join(lines) + "\n")))


@pytest.mark.parametrize("content, message", [("", "empty file"), ("emotion,pixels,Usage\n", "no rows"),
                                              ("a,b,c\n1,2,3\n", "unrecognised header")])
def test_empty_or_foreign_files(write_csv, content, message):
    with pytest.raises(DataError, match=message):
        load_data(str(write_csv(content)))


def test_missing_path_and_corrupt_gzip(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_data(str(tmp_path / "nope.csv"))
    (tmp_path / "bad.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match="gzip"):
        load_data(str(tmp_path / "bad.csv.gz"))


def test_cache_hit_and_no_cache_on_error(write_csv, tmp_path):
    cache = ArrayCache(tmp_path / "cache")
    text, images, _ = kaggle_rows(3)
    path = write_csv(text)
    load_csv(str(path), cache)
    entries = list((tmp_path / "cache").glob("*.npz"))
    assert len(entries) == 1
    np.testing.assert_array_equal(load_csv(str(path), cache).images, images)
    bad = write_csv(text.replace("Training", "Nope", 1), "bad.csv")
    with pytest.raises(DataError):
        load_csv(str(bad), cache)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


def test_cache_key_follows_content(write_csv, tmp_path):
    cache = ArrayCache(tmp_path / "cache")
    path = write_csv(kaggle_rows(2, seed=1)[0])
    load_csv(str(path), cache)
    text, images, _ = kaggle_rows(2, seed=2)
    path.write_text(text)  # same name, new content: must not hit the old entry
    np.testing.assert_array_equal(load_csv(str(path), cache).images, images)


def test_every_member_of_a_multi_member_gzip_is_read(tmp_path):
    """`cat a.gz b.gz` and bgzip write several gzip members; gzip(1) reads them all, and so do we."""
    text, images, labels = kaggle_rows(9)
    head, *rows = text.splitlines(keepends=True)
    parts = [head + "".join(rows[:4]), "".join(rows[4:7]), "", "".join(rows[7:])]  # bgzip ends on an empty one
    path = tmp_path / "cat.csv.gz"
    path.write_bytes(b"".join(gzip.compress(p.encode()) for p in parts) + bytes(512))  # and zero padding
    faces = load_data(str(path))
    np.testing.assert_array_equal(faces.images, images)
    np.testing.assert_array_equal(faces.labels, labels)
    (tmp_path / "junk.csv.gz").write_bytes(gzip.compress(text.encode()) + b"not gzip at all")
    with pytest.raises(DataError, match="trailing bytes after the gzip data"):
        load_data(str(tmp_path / "junk.csv.gz"))
    (tmp_path / "cut.csv.gz").write_bytes(path.read_bytes()[:len(gzip.compress(parts[0].encode())) + 20])
    with pytest.raises(DataError, match="truncated gzip data"):
        load_data(str(tmp_path / "cut.csv.gz"))


def test_a_corrupt_cache_entry_is_rebuilt_with_one_line(write_csv, tmp_path, capsys):
    cache = ArrayCache(tmp_path / "cache")
    text, images, _ = kaggle_rows(5)
    path = write_csv(text)
    load_csv(str(path), cache)
    (entry,) = (tmp_path / "cache").glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:-100])  # cut short, as a full disk or a killed copy leaves it
    for _ in range(2):  # rebuilt the first time, read the second
        np.testing.assert_array_equal(load_csv(str(path), cache).images, images)
    err = capsys.readouterr().err
    assert err.count(f"fer: cache {entry} is unreadable") == 1 and len(err.splitlines()) == 1
    assert list((tmp_path / "cache").iterdir()) == [entry]  # no temporary file left


def test_the_cache_key_holds_the_parser_version(write_csv, tmp_path, monkeypatch):
    cache = ArrayCache(tmp_path / "cache")
    path = write_csv(kaggle_rows(2)[0])
    load_csv(str(path), cache)
    monkeypatch.setattr(fer.data.csv, "PARSER_VERSION", fer.data.csv.PARSER_VERSION + 1)
    load_csv(str(path), cache)  # a fixed parser parses again, never serves the old arrays
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


@pytest.mark.skipif(not SHARED_FER.exists(), reason=f"real FER2013 not present at {SHARED_FER}")
def test_shared_fer2013_counts():
    faces = load_data(str(SHARED_FER))
    assert faces.images.shape == (32298, 48, 48)
    assert len(faces.select("Training")) == 28709 and len(faces.select("PublicTest")) == 3589
    assert np.bincount(faces.select("Training").labels).tolist() == [3995, 436, 4097, 7215, 4830, 3171, 4965]


def test_a_gzip_bomb_is_refused_within_bounded_memory(tmp_path):
    """256 MiB of one endless line, 256 KB compressed: refused at the line cap, with the process's
    peak memory up by under 64 MiB (it used to inflate the whole first read at once)."""
    import subprocess
    import sys
    import zlib

    bomb = tmp_path / "bomb.csv.gz"
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(bomb, "wb") as f:
        f.write(packer.compress(b"emotion,pixels,Usage\n0,"))
        for _ in range(256):
            f.write(packer.compress(b"0" * (1 << 20)))
        f.write(packer.flush())
    probe = ("import resource, sys\nfrom fer.data.csv import parse_csv\nfrom fer.errors import DataError\n"
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "try:\n    parse_csv(sys.argv[1])\nexcept DataError as e:\n    print(e)\n"
             "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)")
    done = subprocess.run([sys.executable, "-c", probe, str(bomb)], capture_output=True, text=True, timeout=120)
    said, grown_mib = done.stdout.strip().splitlines()
    assert said == f"{bomb}: line 2: longer than 65,536 bytes, which no FER2013 row is (not a FER2013 CSV)"
    assert int(grown_mib) < 64, f"peak memory grew by {grown_mib} MiB"
