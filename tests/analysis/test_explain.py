"""analysis.explain: every panel the report draws of a model's inside, computed in one call that
leaves the model as it found it (the report's later sections use the same model)."""
import numpy as np
import torch

from analysis.explain import Options, explain
from analysis.sources import resolve_source
from fer.checkpoint import Checkpoint, preprocessing
from fer.config import load_run
from fer.data import SyntheticSpec, make_synthetic
from fer.data.splits import data_entry
from fer.models import model_from_spec
from tests.factories import write_kaggle


def test_explain_computes_every_panel_and_leaves_the_model_as_it_was(tmp_path):
    faces = make_synthetic(SyntheticSpec(n_per_class=12, seed=5))
    csv = write_kaggle(faces, tmp_path / "faces.csv")
    run = load_run(None, ["model.name=cnn", "model.channels=[4,8]", "model.kernel_sizes=[3]", "model.head=gap",
                          "model.head_hidden=[]", "model.pool=max"])
    spec = run["model"]
    torch.manual_seed(0)
    ckpt = Checkpoint.build(spec, model_from_spec(spec).state_dict(), preprocessing(0.5, 0.2, 48, [1 / 7] * 7),
                            run["train"], data=data_entry(str(csv), 60, 20, "PublicTest"))
    ckpt.save(tmp_path / "run" / "checkpoint.pt")
    (m,) = resolve_source(str(tmp_path / "run"), None, None).models
    m.preds = np.zeros(len(m.faces), dtype=int)  # the report's predictions: all 'angry'
    before = {k: v.clone() for k, v in m.model.state_dict().items()}

    e = explain(m, Options(images=[1, 4], n_filters=4))
    assert e.name == m.name and e.images.tolist() == [1, 4] and len(e.captions) == 2
    assert e.shown.shape == (2, 48, 48) and set(e.maps) == {"gradient", "smoothgrad", "integrated_gradients",
                                                            "gradcam"}
    assert all(a.shape == (2, 48, 48) for a in e.maps.values())
    assert set(e.randomisation) == set(e.maps) and e.mask_share is None  # a CSV's faces carry no masks
    assert e.kernels.shape == (4, 3, 3) and e.patterns.shape[0] == 4 and e.pattern_layer
    assert e.layer == m.model.first_activation and e.activations.shape[0] == 4  # block1's 4 channels
    after = m.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # explained, not changed
    assert not m.model._forward_hooks and not any(x._forward_hooks or x._backward_hooks for x in m.model.modules())
