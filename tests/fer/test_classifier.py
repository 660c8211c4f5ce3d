"""fer.classifier: the one model-with-preprocessing. Its forward pass and the numpy path that
evaluation takes (view logits, then fer.calibration's combine_views) give the same
probabilities, with views, a temperature and a prior correction all in play."""
from dataclasses import replace

import numpy as np
import torch

from fer.checkpoint import preprocessing
from fer.classifier import Classifier
from fer.evaluate import predict_proba, probabilities, view_logits
from fer.models import create_model


def test_forward_and_evaluation_compute_the_same_probabilities(synthetic):
    torch.manual_seed(0)
    model = create_model("cnn", channels=[4, 8], kernel_sizes=[3, 3], head="gap", head_hidden=[]).eval()
    prior = [0.3, 0.015, 0.14, 0.25, 0.17, 0.05, 0.075]  # disgust and surprise rarer than uniform: corrected
    prep = preprocessing(0.5, 0.25, 44, prior, logit_adjust=0.7, temperature=1.8)
    clf = Classifier.of(model, prep, "tencrop")
    faces = synthetic.images[:24]
    with torch.no_grad():
        forward = clf(torch.as_tensor(faces).unsqueeze(1)).numpy()
    logits = view_logits(clf, faces, precision="fp32")
    assert logits.shape == (10, 24, 7)
    assert np.abs(forward - probabilities(logits, prep)).max() < 1e-5
    assert np.abs(forward - predict_proba(model, faces, prep, "tencrop", precision="fp32")).max() < 1e-5
    untempered = probabilities(logits, replace(prep, temperature=1.0))
    uncorrected = probabilities(logits, replace(prep, logit_adjust=0.0))
    assert np.abs(forward - untempered).max() > 1e-3 and np.abs(forward - uncorrected).max() > 1e-3
    assert np.allclose(forward.sum(1), 1.0, atol=1e-5)
