import numpy as np
import pytest
from PIL import Image

from fer.data import FaceSet, load_data, train_val
from fer.data.splits import refit_rows
from fer.errors import DataError


def _image(path, value, size=(64, 80), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, (value,) * 3 if mode == "RGB" else value).save(path)


def test_split_folders_any_size_and_colour(tmp_path):
    _image(tmp_path / "train" / "happy" / "a.jpg", 200)
    _image(tmp_path / "train" / "angry" / "b.png", 10, mode="L", size=(48, 48))
    _image(tmp_path / "validation" / "sad" / "c.png", 120, size=(30, 30))
    faces = load_data(str(tmp_path))
    assert faces.images.shape == (3, 48, 48)
    assert sorted(faces.labels.tolist()) == [0, 3, 4]
    assert len(faces.select("PublicTest")) == 1
    assert abs(int(faces.select("PublicTest").images.mean()) - 120) <= 2


def test_flat_emotion_folders_have_no_split(tmp_path):
    _image(tmp_path / "surprise" / "x.jpg", 90)
    faces = load_data(str(tmp_path))
    assert faces.split is None and faces.labels.tolist() == [5]


def test_unreadable_image_is_named(tmp_path):
    _image(tmp_path / "train" / "happy" / "ok.jpg", 50)
    bad = tmp_path / "train" / "happy" / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.jpg: unreadable image"):
        load_data(str(tmp_path))


def test_unknown_emotion_folder(tmp_path):
    _image(tmp_path / "train" / "bored" / "a.jpg", 50)
    with pytest.raises(DataError, match="'bored' is not an emotion"):
        load_data(str(tmp_path))


def test_train_val_uses_publictest_else_stratified_holdout(synthetic):
    tr, va = train_val(synthetic)
    assert len(tr) == len(synthetic.select("Training")) and len(va) == len(synthetic.select("PublicTest"))
    nosplit = synthetic.subset(np.arange(len(synthetic)))
    nosplit = type(nosplit)(images=nosplit.images, labels=nosplit.labels, split=None, source="x")
    tr, va = train_val(nosplit, val_fraction=0.2, seed=3)
    assert len(va) == round(0.2 * len(nosplit))
    assert np.bincount(va.labels, minlength=7).min() >= 10  # stratified: every class present
    tr2, va2 = train_val(nosplit, val_fraction=0.2, seed=3)
    np.testing.assert_array_equal(va.images, va2.images)


def test_private_test_never_in_training(synthetic):
    tr, va = train_val(synthetic)
    private = synthetic.select("PrivateTest").images.reshape(len(synthetic.select("PrivateTest")), -1)
    used = {r.tobytes() for r in np.concatenate([tr.images, va.images]).reshape(len(tr) + len(va), -1)}
    assert not any(r.tobytes() in used for r in private)


def test_what_systems_and_archivers_leave_behind_is_skipped(tmp_path):
    _image(tmp_path / "train" / "happy" / "a.jpg", 200)
    _image(tmp_path / "validation" / "sad" / "b.png", 50)
    (tmp_path / "train" / "happy" / "._a.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # macOS resource fork
    (tmp_path / "train" / "happy" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / "train" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "__MACOSX" / "train" / "happy").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "train" / "happy" / "._a.jpg").write_bytes(b"junk")
    _image(tmp_path / ".git" / "objects" / "x.png", 1)  # a dot-folder, even holding images
    _image(tmp_path / "train" / ".ipynb_checkpoints" / "c.png", 1)
    faces = load_data(str(tmp_path))
    assert len(faces) == 2 and sorted(faces.labels.tolist()) == [3, 4]


def test_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path):
    bomb = tmp_path / "happy" / "bomb.png"
    bomb.parent.mkdir()
    Image.new("1", (8000, 8000)).save(bomb)  # 64 megapixels in a file of a few kB
    assert bomb.stat().st_size < 100_000
    with pytest.raises(DataError, match=r"bomb.png: an image of 8000x8000 pixels, more than fer reads"):
        load_data(str(tmp_path))


def test_one_image_is_too_few_to_train_and_validate_on(tmp_path):
    _image(tmp_path / "happy" / "a.jpg", 200)
    with pytest.raises(DataError, match="1 image"):
        train_val(load_data(str(tmp_path)))


def _faces(split, n=3):
    n = n if split is None else len(split)
    return FaceSet(images=np.zeros((n, 48, 48), np.uint8), labels=np.arange(n) % 7,
                   split=None if split is None else np.asarray(split), source="x.csv")


def test_refit_rows_are_every_row_but_private_test():
    rows, seen = refit_rows(_faces([0, 1, 2, 0, 1, 2, 0]))
    assert len(rows) == 5 and 2 not in rows.split and seen == ["Training", "PublicTest"]
    rows, seen = refit_rows(_faces([0, 0, 2]))  # no PublicTest: the holdout came from Training
    assert len(rows) == 2 and seen == ["train", "holdout"]
    assert len(refit_rows(_faces(None))[0]) == 3
