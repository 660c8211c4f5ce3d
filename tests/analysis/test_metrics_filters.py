import numpy as np
import pytest
import torch
from torch import nn

from analysis.filters import activations, first_layer_kernels, maximise_activation
from analysis.metrics import confusion, describe_never_predicted, prior_tradeoff
from analysis.sweep import IMPORTANCE, evaluator, param_importance


def test_confusion_from_fixed_predictions():
    labels = np.array([0, 0, 1, 1, 2, 3, 3, 3])
    preds = np.array([0, 2, 0, 0, 2, 3, 3, 0])
    cm = confusion(labels, preds)
    assert cm["counts"][0].tolist() == [1, 0, 1, 0, 0, 0, 0]
    assert cm["counts"][1].tolist() == [2, 0, 0, 0, 0, 0, 0]
    assert cm["rates"][3, 3] == 2 / 3 and cm["accuracy"] == 4 / 8
    assert cm["per_class"]["happy"]["recall"] == 2 / 3 and cm["per_class"]["happy"]["support"] == 3


def test_scores_match_scikit_learns_report():
    from sklearn.metrics import classification_report

    rng = np.random.default_rng(0)
    labels, preds = rng.integers(0, 7, 300), rng.integers(0, 6, 300)  # class 6 never predicted
    cm, ref = confusion(labels, preds), classification_report(labels, preds, labels=range(7), output_dict=True,
                                                              zero_division=0)
    for ours, theirs in ((cm["per_class"]["neutral"], ref["6"]), (cm["macro_avg"], ref["macro avg"]),
                         (cm["weighted_avg"], ref["weighted avg"])):
        assert [ours[k] for k in ("precision", "recall", "f1")] == pytest.approx(
            [theirs[k] for k in ("precision", "recall", "f1-score")])
    assert cm["macro_f1"] == pytest.approx(ref["macro avg"]["f1-score"]) and cm["never_predicted"] == ["neutral"]


def test_never_predicted_class_is_named():
    labels = np.array([0, 1, 1, 2, 3])
    preds = np.array([0, 0, 2, 2, 3])
    cm = confusion(labels, preds)
    assert cm["never_predicted"] == ["disgust"]  # absent classes (no support) are not flagged
    assert "'disgust' is never predicted" in describe_never_predicted(cm["never_predicted"])
    assert describe_never_predicted([]) == "Every class is predicted at least once."


def test_prior_tradeoff_recovers_the_rare_class():
    # two angry images scored angry, two disgust images scored angry with disgust a close second
    labels = np.array([0, 0, 1, 1])
    probs = np.full((4, 7), 0.05)
    probs[:, 0] = [0.6, 0.6, 0.4, 0.4]
    probs[:, 1] = [0.05, 0.05, 0.3, 0.3]
    prior = [0.14, 0.015, 0.14, 0.25, 0.17, 0.11, 0.175]
    df = prior_tradeoff(labels, probs, prior, taus=(0.0, 1.0))
    assert df["recall_disgust"].tolist() == [0.0, 1.0]
    assert df["accuracy"].tolist() == [0.5, 1.0]  # 0.3 x 9.5 beats 0.4 x 1.02; 0.05 x 9.5 loses to 0.6
    assert df["recall_angry"].tolist() == [1.0, 1.0]


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU())
        self.first_conv, self.first_activation = "features.0", "features.1"

    def forward(self, x):
        return self.features(x).mean((2, 3))


def test_kernels_activations_and_patterns():
    model = Tiny()
    with torch.no_grad():
        model.features[0].weight.zero_()
        model.features[0].weight[0, 0, 0, :] = -1.0  # filter 0: a horizontal edge, dark above bright
        model.features[0].weight[0, 0, 2, :] = 1.0
        model.features[0].bias.zero_()
    kernels = first_layer_kernels(model)
    assert kernels.shape == (3, 3, 3) and kernels[0, 2].tolist() == [1, 1, 1]
    x = torch.zeros(1, 1, 48, 48)
    x[0, 0, 10:, :] = 1.0
    acts = activations(model, "features.1", x)
    assert acts.shape == (3, 48, 48) and acts[0, 9].max() == 3.0 and acts[0, 20].max() == 0 and acts[1].max() == 0
    patterns = maximise_activation(model, "features.1", n_filters=1, steps=60)
    drive = lambda img: activations(model, "features.1", torch.as_tensor(img).reshape(1, 1, 48, 48))[0].mean()  # noqa: E731
    noise = torch.nn.functional.instance_norm(torch.randn(20, 1, 48, 48)).numpy()
    assert drive(patterns[0]) > 2 * max(drive(n) for n in noise)  # same scale, far stronger response


def test_importance_is_fanova_over_the_stored_study():
    import optuna

    rng, d = np.random.default_rng(0), optuna.distributions
    dists = {"train/lr": d.FloatDistribution(1e-4, 0.1, log=True), "train/noise": d.FloatDistribution(0, 1)}
    study = optuna.create_study(direction="maximize")
    for lr, noise in zip(10 ** rng.uniform(-4, -1, 20), rng.uniform(0, 1, 20)):
        study.add_trial(optuna.trial.create_trial(params={"train/lr": lr, "train/noise": noise}, distributions=dists,
                                                  value=-abs(np.log10(lr) + 2.5)))
    imp = param_importance(study)
    assert imp["train/lr"] > imp["train/noise"]  # the score depends on lr only
    assert isinstance(evaluator(), optuna.importance.FanovaImportanceEvaluator) and IMPORTANCE == "fANOVA"
    assert param_importance(optuna.create_study()) == {}  # too few trials: none claimed
