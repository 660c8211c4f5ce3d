"""Faces in photos and videos: found by OpenCV's frontal-face Haar cascade (shipped inside
opencv-python-headless, so no model is downloaded), each cropped with a margin around the
detector's box, made 48x48 grayscale like a FER2013 face, then classified.

The detector's box spans brows to mouth; FER2013's crops show a little more (forehead and
chin), hence MARGIN on every side. An image no larger than CROP_MAX_SIDE on both sides is taken
to be a face crop already (FER2013's are 48x48) unless --faces says otherwise.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fer.atomic import write_atomic
from fer.errors import DataError

MARGIN = 0.15  # of the detector's box side, added on each side
CROP_MAX_SIDE = 100
MIN_FACE = 24  # pixels: smaller boxes are not looked for
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


class Face(NamedTuple):
    box: tuple[int, int, int, int]  # x, y, width, height in the image's pixels
    pixels: np.ndarray  # (48, 48) uint8


def _cv2():
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # a corrupt video is our one line, not FFmpeg's
    import cv2

    return cv2


class FaceFinder:
    """The cascade, loaded once."""

    def __init__(self):
        cv2 = _cv2()
        self.cv2 = cv2
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        if self.cascade.empty():
            raise DataError("OpenCV's haarcascade_frontalface_default.xml could not be loaded")

    def find(self, gray: np.ndarray) -> list[Face]:
        """Every face in a grayscale image (H, W) uint8, left to right."""
        boxes = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(MIN_FACE, MIN_FACE))
        return [Face(tuple(int(v) for v in b), self.crop(gray, b)) for b in sorted(boxes, key=lambda b: b[0])]

    def crop(self, gray: np.ndarray, box) -> np.ndarray:
        x, y, w, h = (int(v) for v in box)
        m = int(round(MARGIN * max(w, h)))
        padded = np.pad(gray, m, mode="edge")  # a face at the border keeps its margin
        window = padded[y:y + h + 2 * m, x:x + w + 2 * m]
        return self.cv2.resize(window, (48, 48), interpolation=self.cv2.INTER_AREA)


def read_gray(path: str | Path) -> np.ndarray:
    """A photo as grayscale (H, W) uint8 at its own size."""
    from PIL import Image, UnidentifiedImageError

    from fer.data.folders import MAX_PIXELS

    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise DataError(f"{path}: an image of {im.width}x{im.height} pixels, more than fer reads "
                                f"({MAX_PIXELS:,})")
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image") from None
    except Image.DecompressionBombError:  # a header declaring > 2x PIL's limit: refused before decoding
        raise DataError(f"{path}: an image of more pixels than fer reads ({MAX_PIXELS:,})") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable image ({e.__class__.__name__}: {e})") from None


def is_crop(gray: np.ndarray) -> bool:
    return max(gray.shape) <= CROP_MAX_SIDE


def annotate(path: str | Path, faces: list[Face], labels: list[str], out: str | Path) -> Path:
    """The photo with each face's box and label drawn on it."""
    from PIL import Image, ImageDraw

    with Image.open(path) as im:
        im = im.convert("RGB")
    draw = ImageDraw.Draw(im)
    for face, label in zip(faces, labels):
        x, y, w, h = face.box
        draw.rectangle([x, y, x + w, y + h], outline=(255, 40, 40), width=max(2, w // 40))
        draw.text((x, max(0, y - 12)), label, fill=(255, 40, 40))
    out = Path(out)
    kind = Image.registered_extensions().get(out.suffix.lower(), "PNG")
    return write_atomic(out, lambda f: im.save(f, format=kind))


class Frame(NamedTuple):
    index: int
    seconds: float
    gray: np.ndarray


def video_frames(path: str | Path, every: int, on_frame: Callable[[int, int], None] | None = None) -> Iterator[Frame]:
    """Every `every`-th frame of a video as grayscale; a file OpenCV cannot decode is a DataError."""
    cv2 = _cv2()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"{path}: not a video OpenCV can decode (missing, corrupt or an unknown codec)")
    from fer.data.folders import MAX_PIXELS

    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    if width * height > MAX_PIXELS:  # the container's own word, before any frame is decoded
        capture.release()
        raise DataError(f"{path}: frames of {width}x{height} pixels, more than fer reads ({MAX_PIXELS:,})")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                yield Frame(index, index / fps if fps else float("nan"), cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
            index += 1
            if on_frame:
                on_frame(index, total)
    finally:
        capture.release()
    if index == 0:
        raise DataError(f"{path}: a video without a frame OpenCV can decode")
