import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fer.config import load_run
from fer.data import SyntheticSpec, make_synthetic, train_val
from fer.train import Trainer


def test_deterministic_by_seed():
    a = make_synthetic(SyntheticSpec(n_per_class=10, seed=5))
    b = make_synthetic(SyntheticSpec(n_per_class=10, seed=5))
    c = make_synthetic(SyntheticSpec(n_per_class=10, seed=6))
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)


def test_the_cached_set_is_the_drawn_set_and_a_damaged_entry_is_drawn_again(tmp_path, capsys):
    from fer.data.cache import ArrayCache
    from fer.data.synthetic import cached_synthetic

    spec, cache = SyntheticSpec(n_per_class=5, seed=3), ArrayCache(tmp_path)
    drawn = make_synthetic(spec)
    first, again = cached_synthetic(spec, cache), cached_synthetic(spec, cache)  # drawn, then read back
    (entry,) = tmp_path.glob("synthetic-*.npz")
    for field in ("images", "labels", "split", "masks"):
        for got in (first, again):
            np.testing.assert_array_equal(getattr(got, field), getattr(drawn, field))
            assert getattr(got, field).dtype == getattr(drawn, field).dtype
    assert again.source == "synthetic"
    other = cached_synthetic(SyntheticSpec(n_per_class=5, seed=4), cache)  # another spec, another entry
    assert len(list(tmp_path.glob("synthetic-*.npz"))) == 2 and not np.array_equal(other.images, drawn.images)
    entry.write_bytes(b"not an npz")
    np.testing.assert_array_equal(cached_synthetic(spec, cache).images, drawn.images)


def test_shapes_masks_and_balance(synthetic):
    assert synthetic.images.shape == synthetic.masks.shape == (420, 48, 48)
    assert synthetic.images.dtype == np.uint8 and synthetic.masks.dtype == bool
    assert np.bincount(synthetic.labels).tolist() == [60] * 7
    share = synthetic.masks.mean()
    assert 0.05 < share < 0.4  # the decisive regions are a minority of the image


def test_classes_differ_only_inside_masks():
    """Mean class images differ mostly inside the decisive regions."""
    faces = make_synthetic(SyntheticSpec(n_per_class=150, seed=0))
    means = np.stack([faces.images[faces.labels == c].mean(0) for c in range(7)])
    spread = means.std(0)
    mask = faces.masks.mean(0) > 0.5
    assert spread[mask].mean() > 1.5 * spread[~mask].mean()


@pytest.mark.slow  # trains a CNN to a real accuracy (about 20 s on 2 cores)
def test_small_cnn_learns_but_linear_model_does_not():
    faces = make_synthetic(SyntheticSpec(n_per_class=400, seed=0))
    tr, va = train_val(faces)
    linear = LogisticRegression(max_iter=200, C=0.1).fit(tr.images.reshape(len(tr), -1) / 255.0, tr.labels)
    assert linear.score(va.images.reshape(len(va), -1) / 255.0, va.labels) < 0.75
    run = load_run(None, ["model.name=cnn", "model.channels=[16,32,64]", "model.kernel_sizes=[3,3,3]",
                          "model.head=gap", "model.head_hidden=[]", "model.pool=max", "model.pool_last=true",
                          "model.act_per_conv=true", "model.dropout=0", "train.epochs=5", "train.batch_size=64",
                          "train.schedule=onecycle", "train.lr=0.003"])
    history = Trainer.from_run(run, tr, va).fit()
    assert max(m["val_acc"] for m in history) >= 0.9
