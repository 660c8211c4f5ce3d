"""`fer predict` on photos and videos: faces found by OpenCV's Haar cascade in a real photo that
scikit-image ships and in a composite of several, none in a face-free image, and a video made
here read into a CSV timeline."""
import csv
import io

import numpy as np
import pytest
from PIL import Image

from fer.cli import main
from fer.faces import FaceFinder
from fer.predict import predict_video


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()  # (512, 512, 3): one face, Eileen Collins


@pytest.fixture
def checkpoint(trained_runs):
    return trained_runs["dnn"] / "checkpoint.pt"  # the course report's DNN, trained once per session


def test_annotate_never_overwrites_a_photo_or_a_file(checkpoint, astronaut, tmp_path, capsys):
    """Onto the input folder, onto the photo itself, onto an existing file, two photos of one
    name: each refused in one line before anything is written, every byte as it was."""
    photos = tmp_path / "photos"
    (photos / "b").mkdir(parents=True)
    Image.fromarray(astronaut).save(photos / "a.png")
    Image.fromarray(astronaut).save(photos / "b" / "a.png")
    Image.fromarray(astronaut[:200]).save(photos / "c.png")
    before = {p: p.read_bytes() for p in photos.rglob("*.png")}
    one, other, same_name = str(photos / "a.png"), str(photos / "c.png"), str(photos / "b" / "a.png")
    for argv, said in [([one, other, "--annotate", str(photos)], "would overwrite the input"),
                       ([one, "--annotate", one], "would overwrite the input"),
                       ([one, "--annotate", other], "c.png exists"),
                       ([one, same_name, "--annotate", str(tmp_path / "out")], "two photos named a.png")]:
        assert main(["predict", str(checkpoint), *argv]) == 2
        err = capsys.readouterr().err
        assert said in err and len(err.strip().splitlines()) == 1, err
    assert {p: p.read_bytes() for p in photos.rglob("*.png")} == before and not (tmp_path / "out").exists()


def test_the_face_in_a_real_photo_and_each_in_a_composite(astronaut):
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    (face,) = FaceFinder().find(gray)
    x, y, w, h = face.box
    assert 150 < x + w / 2 < 260 and 60 < y + h / 2 < 170 and face.pixels.shape == (48, 48)  # her face
    small = np.asarray(Image.fromarray(gray).resize((380, 380)))
    composite = np.full((600, 1200), 255, np.uint8)
    for i in range(3):
        composite[100:480, 20 + 400 * i:400 + 400 * i] = small
    found = FaceFinder().find(composite)
    assert len(found) == 3 and [f.box[0] for f in found] == sorted(f.box[0] for f in found)
    assert FaceFinder().find(np.full((300, 400), 128, np.uint8)) == []


def test_predict_prints_a_line_per_face_and_annotates(checkpoint, astronaut, tmp_path, capsys):
    photo, blank, crop = tmp_path / "astronaut.png", tmp_path / "wall.png", tmp_path / "crop.png"
    Image.fromarray(astronaut).save(photo)
    Image.fromarray(np.full((300, 400), 128, np.uint8)).save(blank)
    Image.fromarray(np.full((48, 48), 90, np.uint8)).save(crop)
    assert main(["predict", str(checkpoint), str(photo), str(blank), str(crop), "--annotate",
                 str(tmp_path / "boxes")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{photo}\tbox=") and len(lines[0].split("\t")) == 4
    assert lines[1] == f"{blank}\tno face found"
    assert lines[2].startswith(f"{crop}\t") and "box=" not in lines[2]  # a 48x48 crop is classified whole
    annotated = np.asarray(Image.open(tmp_path / "boxes" / "astronaut.png"))
    assert annotated.shape == astronaut.shape and not np.array_equal(annotated, astronaut)
    assert main(["predict", str(checkpoint), str(photo), "--faces", "none"]) == 0
    assert "box=" not in capsys.readouterr().out


def test_a_video_gives_a_timeline_and_a_corrupt_one_is_one_line(checkpoint, astronaut, tmp_path, capsys):
    import cv2

    from fer.predict import predictor

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for i in range(10):
        writer.write(astronaut[:, :, ::-1] if i < 6 else np.full((512, 512, 3), 128, np.uint8))  # then no face
    writer.release()
    out = io.StringIO()
    predict_video(predictor(str(checkpoint)), str(video), every=2, out=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["frame"] for r in rows] == ["0", "2", "4", "6", "8"]
    assert [r["seconds"] for r in rows] == ["0.000", "0.200", "0.400", "0.600", "0.800"]
    assert all(r["x"] for r in rows[:3]) and not any(r["x"] for r in rows[3:])
    classes = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert abs(sum(float(rows[0][c]) for c in classes) - 1) < 1e-3
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 100)
    assert main(["predict", str(checkpoint), str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1 and "broken.mp4: not a video" in captured.err


def test_a_photo_declaring_too_many_pixels_is_one_line(checkpoint, tmp_path, capsys):
    """A PNG whose header claims 20000x20000 (PIL refuses past 179 MP before decoding)."""
    import struct
    import zlib

    path = tmp_path / "huge.png"
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 20000, 20000)  # IHDR's width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # its CRC
    path.write_bytes(bytes(data))
    assert main(["predict", str(checkpoint), str(path)]) == 2
    err = capsys.readouterr().err
    assert "huge.png: an image of more pixels than fer reads" in err and len(err.strip().splitlines()) == 1


def test_a_video_of_frames_too_large_is_one_line(checkpoint, tmp_path, monkeypatch, capsys):
    """Frame size as the container declares it, checked before any frame is decoded."""
    import cv2

    import fer.data.folders

    video = tmp_path / "wide.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    writer.write(np.zeros((240, 320, 3), np.uint8))
    writer.release()
    monkeypatch.setattr(fer.data.folders, "MAX_PIXELS", 320 * 240 - 1)  # a limit just under this video's frames
    assert main(["predict", str(checkpoint), str(video)]) == 2
    err = capsys.readouterr().err
    assert "wide.avi: frames of 320x240 pixels, more than fer reads (76,799)" in err
    assert len(err.strip().splitlines()) == 1
