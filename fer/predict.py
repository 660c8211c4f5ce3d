"""`fer predict`: class probabilities for face crops, for the faces found in photos, and a CSV
timeline of the faces in a video (fer.faces finds and crops them)."""
from __future__ import annotations

import csv
import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fer.data import CLASSES, read_image
from fer.errors import DataError
from fer.faces import VIDEO_SUFFIXES, FaceFinder, annotate, is_crop, read_gray, video_frames


def predictor(path: str, trust_torchscript: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 faces (N, 48, 48) -> probabilities (N, 7), from a checkpoint or an exported file."""
    from fer.checkpoint import Checkpoint
    from fer.evaluate import predict_checkpoint
    from fer.ship.export import exported_format, load_exported

    if exported_format(path):
        return load_exported(path, trust_torchscript=trust_torchscript)
    ckpt = Checkpoint.load(path)
    return lambda faces: predict_checkpoint(ckpt, faces)


def _scores(p: np.ndarray) -> str:
    return f"{CLASSES[int(p.argmax())]}\t" + " ".join(f"{c}={v:.3f}" for c, v in zip(CLASSES, p))


def predict_images(predict, images: list[str], faces: str, annotate_to: str | None) -> list[str]:
    """One line per image (a face crop, or --faces none) or per face found in it (--faces all, or a
    photo larger than a crop): path, [box,] label, probabilities."""
    finder, lines = None, []
    for path in images:
        gray = read_gray(path)
        if faces == "none" or (faces == "auto" and is_crop(gray)):
            lines.append(f"{path}\t{_scores(predict(read_image(path)[None])[0])}")
            continue
        finder = finder or FaceFinder()
        found = finder.find(gray)
        if not found:
            lines.append(f"{path}\tno face found")
            continue
        probs = predict(np.stack([f.pixels for f in found]))
        for face, p in zip(found, probs):
            lines.append(f"{path}\tbox={','.join(map(str, face.box))}\t{_scores(p)}")
        if annotate_to:
            out = annotated_path(images, annotate_to, path)
            annotate(path, found, [CLASSES[int(p.argmax())] for p in probs], out)
    return lines


def is_video(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def predict_video(predict, path: str, every: int, out=sys.stdout) -> int:
    """The CSV timeline of a video's faces, one row per face found in every `every`-th frame
    (frame, seconds, box, probabilities; a frame without a face has one row with empty box)."""
    from fer.progress import EpochBar

    finder, rows = FaceFinder(), 0
    bar = EpochBar(1, desc="video", unit="frame")
    frames = video_frames(path, every, on_frame=bar)
    try:
        first = next(frames)  # a video that cannot be decoded is one line before any CSV is written
        writer = csv.writer(out)
        writer.writerow(["frame", "seconds", "x", "y", "width", "height", "label", *CLASSES])
        for frame in itertools.chain([first], frames):
            found = finder.find(frame.gray)
            probs = predict(np.stack([f.pixels for f in found])) if found else []
            if not found:
                writer.writerow([frame.index, f"{frame.seconds:.3f}", "", "", "", "", "", *[""] * len(CLASSES)])
            for face, p in zip(found, probs):
                writer.writerow([frame.index, f"{frame.seconds:.3f}", *face.box, CLASSES[int(p.argmax())],
                                 *(f"{v:.4f}" for v in p)])
                rows += 1
    finally:
        bar.close()
    return rows


def check_inputs(images: list[str], annotate_to: str | None) -> None:
    if any(is_video(p) for p in images) and len(images) > 1:
        raise DataError("a video is predicted alone: give one video file, or only images")
    if annotate_to and any(is_video(p) for p in images):
        raise DataError("--annotate: for photos; a video gives a CSV timeline")
    if annotate_to:
        check_annotations(images, annotate_to)


def annotated_path(images: list[str], annotate_to: str, image: str) -> Path:
    """Where the annotated copy of `image` goes: --annotate itself for one photo, else inside it."""
    return Path(annotate_to) if len(images) == 1 else Path(annotate_to) / Path(image).name


def check_annotations(images: list[str], annotate_to: str) -> None:
    """Nothing the user made is overwritten: no output is an input or an existing file, and no two
    inputs share an output name."""
    inputs = {Path(p).resolve() for p in images}
    outs = [annotated_path(images, annotate_to, p) for p in images]
    for out in outs:
        if out.resolve() in inputs:
            raise DataError(f"--annotate {annotate_to}: would overwrite the input {out}; name another "
                            + ("file" if len(images) == 1 else "folder"))
        if out.exists():
            raise DataError(f"--annotate {annotate_to}: {out} exists; name another "
                            + ("file" if len(images) == 1 else "folder") + ", or remove it")
    twice = next((o for o in outs if outs.count(o) > 1), None)
    if twice is not None:
        raise DataError(f"--annotate {annotate_to}: two photos named {twice.name} would be written to {twice}")
