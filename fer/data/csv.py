"""FER2013 CSV files: Kaggle's `emotion,pixels,Usage` and the course's `label,feature` / `id,feature`.

FER2013 holds about 74 million pixel integers as text. They are parsed a few MB at
a time as the file is decompressed: each chunk gets a handful of whole-buffer numpy
passes (digit test, token-end edges, three masked gathers) with no per-value Python,
and the chunk stays in cache while it is worked on. The parsed arrays are cached by
the file's content hash, so a second load only reads two arrays.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

from fer.atomic import digest
from fer.data.cache import ArrayCache
from fer.data.dataset import FaceSet
from fer.data.splits import SPLITS, canonical_split
from fer.errors import DataError

N_PIXELS = 48 * 48
_LAYOUTS = {  # lower-cased header -> (label column or None, pixel column)
    ("emotion", "pixels", "usage"): ("emotion", "pixels"),
    ("emotion", "pixels"): ("emotion", "pixels"),
    ("label", "feature"): ("label", "feature"),
    ("id", "feature"): (None, "feature"),
}
_CHUNK = 1 << 19  # bytes read at a time: about 2 MB of text, so each chunk stays in cache
_INFLATED = 1 << 22  # at most this much text inflated from one read: a gzip bomb never inflates whole
MAX_LINE = 1 << 16  # bytes in one line at most: a FER2013 row (2,304 pixels of up to 3 digits) is under 10 KB
PARSER_VERSION = 2  # part of the cache key: raise it whenever a change alters what a file parses to


def load_csv(path: str, cache: ArrayCache | None = None) -> FaceSet:
    """Load a FER2013-style CSV (plain or gzip); cached by content when `cache` is given."""
    key = _content_key(path) if cache else None
    arrays = cache.get(key) if cache else None
    if arrays is None:
        arrays = parse_csv(path)
        if cache:
            cache.put(key, arrays)
    labels = None if arrays["unlabelled"].item() else arrays["labels"]
    split = arrays["split"] if arrays["split"].size else None
    return FaceSet(images=arrays["images"], labels=labels, split=split, source=path)


def _content_key(path: str) -> str:
    """The file's content and PARSER_VERSION: a fixed parser never serves an old parse."""
    try:
        return f"csv-v{PARSER_VERSION}-" + digest(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def parse_csv(path: str) -> dict:
    """Arrays `images` (N,48,48) uint8, `labels` (N,) int64, `split` (N,) int8 (empty
    when there is no Usage column) and `unlabelled` (0-d bool)."""
    chunks = _text_chunks(path)
    head, _, first = next(chunks, b"").partition(b"\n")
    columns = tuple(c.strip().lower() for c in head.decode("utf-8", "replace").lstrip("\ufeff").split(","))
    if not head.strip():
        raise DataError(f"{path}: empty file")
    if columns not in _LAYOUTS:
        raise DataError(f"{path}: line 1: unrecognised header {head[:80].decode('utf-8', 'replace')!r} "
                        "(expected emotion,pixels,Usage or label,feature or id,feature)")
    parser = _ChunkParser(path, columns)
    parser.feed(first)
    for text in chunks:
        parser.feed(text)
    return parser.result()


def _text_chunks(path: str) -> Iterator[bytes]:
    """Decompressed text in pieces that each end on a line boundary; a line longer than MAX_LINE
    (no FER2013 row is) is refused as soon as it is seen, so memory stays bounded."""
    pending, lines = b"", 0
    for data in _decompressed(path):
        text = pending + data
        cut = text.rfind(b"\n") + 1
        if cut:
            lines += text.count(b"\n", 0, cut)
            yield text[:cut]
        pending = text[cut:]
        if len(pending) > MAX_LINE:
            raise DataError(f"{path}: line {lines + 1}: longer than {MAX_LINE:,} bytes, which no FER2013 row is "
                            "(not a FER2013 CSV)")
    if pending.strip():
        yield pending + b"\n"


def _inflated(inflate, block: bytes, path: str) -> Iterator[bytes]:
    """`block` inflated _INFLATED bytes at a time (its compressed rest kept by zlib meanwhile)."""
    try:
        yield inflate.decompress(block, _INFLATED)
        while inflate.unconsumed_tail:
            yield inflate.decompress(inflate.unconsumed_tail, _INFLATED)
    except zlib.error as e:
        raise DataError(f"{path}: corrupt gzip data ({e})") from None


def _decompressed(path: str) -> Iterator[bytes]:
    """The file's bytes, inflated when it is gzip: every member of it, as gzip(1) reads a
    concatenation (`cat a.gz b.gz`, bgzip's blocks), not just the first."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        block = f.read(_CHUNK)
        if block[:2] != b"\x1f\x8b":
            while block:
                yield block
                block = f.read(_CHUNK)
            return
        inflate = zlib.decompressobj(wbits=31)
        while block:
            yield from _inflated(inflate, block, path)
            if inflate.eof:  # a member ended: another may follow, in this block or the next
                block = inflate.unused_data
                if len(block) < 2:
                    block += f.read(_CHUNK)
                if block and not block.strip(b"\0"):
                    block = b""  # zero padding after the last member (tape blocks): gzip(1) ignores it
                elif block:
                    if block[:2] != b"\x1f\x8b":
                        raise DataError(f"{path}: trailing bytes after the gzip data that are not gzip")
                    inflate = zlib.decompressobj(wbits=31)
            else:
                block = f.read(_CHUNK)
        if not inflate.eof:
            raise DataError(f"{path}: truncated gzip data")


class _ChunkParser:
    """Parses row-aligned chunks of a CSV body, keeping line numbers for errors."""

    def __init__(self, path: str, columns: tuple[str, ...]):
        self.path, self.columns = path, columns
        label_col, pixel_col = _LAYOUTS[columns]
        self.label_col = None if label_col is None else columns.index(label_col)
        self.pixel_col = columns.index(pixel_col)
        self.usage_col = columns.index("usage") if "usage" in columns else None
        self.line = 2  # line number of the next row; the header is line 1
        self.images, self.labels, self.split = [], [], []

    def feed(self, text: bytes) -> None:
        text = text.replace(b"\r", b" ") if b"\r" in text else text
        if not text.strip():
            return
        buf = np.frombuffer(bytearray(text), np.uint8)
        row_end = np.flatnonzero(buf == 10)  # (R,) '\n' of each row
        bounds = self._field_bounds(buf, row_end)  # (R, ncols+1) field f spans bounds[f]+1..bounds[f+1]
        if self.label_col is not None:
            self.labels.append(self._labels(text, bounds))
        if self.usage_col is not None:
            self.split.append(self._usage(text, bounds))
        self._blank_other_fields(buf, bounds)
        self.images.append(self._pixels(buf, row_end, bounds))
        self.line += len(row_end)

    def result(self) -> dict:
        if not self.images:
            raise DataError(f"{self.path}: no rows after the header")
        images = np.concatenate(self.images).reshape(-1, 48, 48)
        labels = np.concatenate(self.labels) if self.labels else np.zeros(len(images), np.int64)
        split = np.concatenate(self.split) if self.split else np.zeros(0, np.int8)
        return {"images": images, "labels": labels, "split": split, "unlabelled": np.array(self.label_col is None)}

    def _fail(self, row: int, what: str):
        raise DataError(f"{self.path}: line {self.line + row}: {what}")

    def _field_bounds(self, buf: np.ndarray, row_end: np.ndarray) -> np.ndarray:
        ncols = len(self.columns)
        commas = np.flatnonzero(buf == 44)
        per_row = np.bincount(np.searchsorted(row_end, commas), minlength=len(row_end))
        if (bad := np.flatnonzero(per_row != ncols - 1)).size:
            self._fail(bad[0], f"expected {ncols} comma-separated fields, found {per_row[bad[0]] + 1}")
        row_start = np.concatenate([[-1], row_end[:-1]])  # the '\n' before each row
        return np.column_stack([row_start, commas.reshape(-1, ncols - 1), row_end])

    def _texts(self, text: bytes, bounds: np.ndarray, col: int) -> list[str]:
        lo, hi = (bounds[:, col] + 1).tolist(), bounds[:, col + 1].tolist()
        return [text[a:b].decode("utf-8", "replace").strip() for a, b in zip(lo, hi)]

    def _labels(self, text: bytes, bounds: np.ndarray) -> np.ndarray:
        texts = self._texts(text, bounds, self.label_col)
        for i, t in enumerate(texts):
            if not (t.isascii() and t.isdigit() and int(t) <= 6):
                self._fail(i, f"label {t!r} is not an integer in 0-6")
        return np.array(texts, dtype=np.int64)

    def _usage(self, text: bytes, bounds: np.ndarray) -> np.ndarray:
        codes = {}
        for i, t in enumerate(texts := self._texts(text, bounds, self.usage_col)):
            if t not in codes:
                try:
                    codes[t] = SPLITS.index(canonical_split(t))
                except DataError:
                    self._fail(i, f"unknown Usage {t!r} (expected one of {', '.join(SPLITS)})")
        return np.array([codes[t] for t in texts], dtype=np.int8)

    def _blank_other_fields(self, buf: np.ndarray, bounds: np.ndarray) -> None:
        """Spaces over every field but the pixels, so the only digits left are pixels."""
        for col in range(len(self.columns)):
            if col != self.pixel_col:
                for a, b in zip((bounds[:, col] + 1).tolist(), bounds[:, col + 1].tolist()):
                    buf[a:b] = 32

    def _pixels(self, buf: np.ndarray, row_end: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """(R, 2304) uint8 from a chunk whose non-pixel fields are blank.

        Each integer ends at a digit followed by a non-digit; its value is read from
        that digit and the two bytes before it, which count only while they are digits.
        """
        d = buf - np.uint8(48)  # digits -> 0..9; anything else -> >= 10 (uint8 wraps)
        isdig = d < 10
        n_digits = np.count_nonzero(isdig)
        n_other = buf.size - n_digits - np.count_nonzero(buf == 32)
        if n_other != bounds.shape[0] * len(self.columns):  # commas and newlines only
            self._bad_character(buf, isdig, row_end)
        last = np.flatnonzero(np.greater(isdig[:-1], isdig[1:]))  # (T,) last digit of each integer
        counts = np.diff(np.searchsorted(last, row_end), prepend=0)
        if (bad := np.flatnonzero(counts != N_PIXELS)).size:
            self._fail(bad[0], f"expected {N_PIXELS} pixels, found {counts[bad[0]]}")
        # Byte 0 is the blanked label field, so clipping index -1 to 0 reads a non-digit.
        ones, tens, hundreds = d[last], d.take(last - 1, mode="clip"), d.take(last - 2, mode="clip")
        two = tens < 10
        three = two & (hundreds < 10)
        if n_digits != last.size + np.count_nonzero(two) + np.count_nonzero(three):
            self._too_many_digits(buf, isdig, row_end)
        value = ones + np.uint16(10) * (tens * two) + np.uint16(100) * (hundreds * three)
        if (big := np.flatnonzero(value > 255)).size:
            self._fail(big[0] // N_PIXELS, f"pixel {big[0] % N_PIXELS + 1} value {value[big[0]]} is out of range 0-255")
        return value.astype(np.uint8).reshape(-1, N_PIXELS)

    def _bad_character(self, buf: np.ndarray, isdig: np.ndarray, row_end: np.ndarray):
        ok = isdig | (buf == 32) | (buf == 44) | (buf == 10)
        pos = int(np.flatnonzero(~ok)[0])
        lo, hi = pos, pos
        while lo > 0 and buf[lo - 1] not in (32, 44):
            lo -= 1
        while hi < buf.size and buf[hi] not in (32, 44, 10):
            hi += 1
        token = bytes(buf[lo:hi]).decode("utf-8", "replace")
        self._fail(int(np.searchsorted(row_end, pos)), f"pixel value {token!r} is not an integer")

    def _too_many_digits(self, buf: np.ndarray, isdig: np.ndarray, row_end: np.ndarray):
        run = isdig[:-3] & isdig[1:-2] & isdig[2:-1] & isdig[3:]  # four digits in a row
        pos = int(np.flatnonzero(run)[0])
        self._fail(int(np.searchsorted(row_end, pos)), "a pixel value has more than 3 digits (out of range 0-255)")
