"""Distillation: the loss pulls a student towards its teacher's softened probabilities, a run
that asks for a teacher without one is refused, and `distill` starts from the student's
weights, moves it towards the teacher and records both in its checkpoint."""
import numpy as np
import pytest
import torch

from fer.checkpoint import Checkpoint, load_checkpoint, preprocessing
from fer.cli import main
from fer.data import load_data
from fer.errors import CheckpointError, ConfigError
from fer.evaluate import predict_checkpoint
from fer.ship.distill import DistillSettings, check_pair, distill, distill_config
from fer.train import distillation_loss, soften
from tests.factories import TINY_CNN, kaggle_rows


def test_soften_at_temperature_one_is_the_identity_and_higher_flattens():
    p = torch.tensor([[0.7, 0.1, 0.1, 0.05, 0.03, 0.01, 0.01]])
    assert torch.allclose(soften(p, 1.0), p, atol=1e-6)
    hot, flat = soften(p, 0.5), soften(p, 4.0)
    entropy = lambda q: -(q * q.log()).sum()  # noqa: E731
    assert entropy(hot) < entropy(p) < entropy(flat) and torch.allclose(flat.sum(1), torch.ones(1))


def test_the_loss_is_zero_at_the_teacher_and_its_gradient_points_to_it():
    teacher_logits = torch.tensor([[2.0, -1.0, 0.5, 0.0, 0.0, 1.0, -0.5]])
    soft = soften(torch.softmax(teacher_logits, 1), 2.0)
    assert distillation_loss(teacher_logits, soft, 2.0).item() == pytest.approx(0.0, abs=1e-5)
    student = torch.zeros(1, 7, requires_grad=True)
    loss = distillation_loss(student, soft, 2.0)
    loss.backward()
    assert loss.item() > 0
    stepped = student.detach() - 1.0 * student.grad  # one gradient step moves the student's ranking to the teacher's
    assert stepped.argmax().item() == teacher_logits.argmax().item()


def test_the_temperature_squared_keeps_the_gradient_scale():
    """Hinton et al.: without T^2 the soft term's gradients shrink as 1/T^2."""
    teacher, student = torch.randn(64, 7), torch.randn(64, 7)
    norms = []
    for t in (1.0, 4.0):
        s = student.clone().requires_grad_(True)
        distillation_loss(s, soften(torch.softmax(teacher, 1), t), t).backward()
        norms.append(s.grad.norm().item())
    assert 0.2 < norms[1] / norms[0] < 5  # (it would be ~1/16 without T^2)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A student (2 epochs) and a teacher (another seed, 4 epochs) trained on one tiny CSV."""
    root = tmp_path_factory.mktemp("distill")
    data = root / "data.csv"
    data.write_text(kaggle_rows(70, usages=("Training", "Training", "PublicTest"))[0])
    for name, epochs, seed in (("student", 2, 0), ("teacher", 4, 1)):
        assert main(["train", "--data", str(data), "--epochs", str(epochs), "--seed", str(seed),
                     "--out", str(root / name), *TINY_CNN]) == 0
    return root, Checkpoint.load(root / "student"), str(root / "teacher" / "checkpoint.pt")


def _gap(ckpt: Checkpoint, teacher: str, images: np.ndarray) -> float:
    """Mean KL(teacher || model) over `images`: how far the model is from its teacher."""
    t, s = predict_checkpoint(Checkpoint.load(teacher), images), predict_checkpoint(ckpt, images)
    return float(np.mean(np.sum(t * (np.log(t + 1e-8) - np.log(s + 1e-8)), axis=1)))


def test_distill_moves_the_student_towards_its_teacher_and_records_both(pair):
    root, student, teacher = pair
    faces = load_data(student.source)
    settings = DistillSettings(weight=1.0, temperature=1.0, lr_scale=1.0, epochs=6)
    seen = []
    new = distill(student, Checkpoint.load(teacher), faces, root / "out", settings, on_teacher=seen.append)
    train = faces.subset(np.flatnonzero(faces.split == 0))
    assert _gap(new, teacher, train.images) < _gap(student, teacher, train.images)
    saved = load_checkpoint(root / "out")
    assert saved["data"]["distilled_from"]["teacher"] == teacher and len(seen) == 1
    assert saved["data"]["distilled_from"]["student_metrics"]["val_acc"] == student.metrics["val_acc"]
    assert saved["train_config"]["distill"] == 1.0 and saved["data"]["val_split"] == "PublicTest"
    assert saved["train_config"]["lr"] == pytest.approx(student.train_config["lr"])


def test_the_student_starts_from_its_own_weights(pair):
    """At a vanishing learning rate the weights barely move: the start was the student's, not a fresh model's."""
    root, student, _ = pair
    settings = DistillSettings(weight=0.0, lr_scale=1e-9, epochs=1)
    new = distill(student, None, load_data(student.source), root / "control", settings)
    for name, w in new.state_dict.items():
        if w.is_floating_point() and "running_" not in name:  # (batch-norm statistics move in training mode)
            assert torch.allclose(w, student.state_dict[name], atol=1e-5), name


def test_the_config_restarts_the_student_at_a_share_of_its_rate(pair):
    _, student, _ = pair
    train = distill_config(student, DistillSettings(lr_scale=0.1, epochs=7, temperature=3.0), 120.0)["train"]
    assert train["lr"] == pytest.approx(0.1 * student.train_config["lr"])
    assert (train["epochs"], train["time_budget_s"]) == (7, 120.0)
    assert (train["distill_temperature"], train["distill"]) == (3.0, 0.5)


def test_a_teacher_that_saw_the_selection_split_or_other_data_is_refused(pair):
    _, student, teacher = pair

    def ckpt(data):
        return Checkpoint({"model": {"name": "seed_dnn"}, "data": data, "train_config": {},
                           "preprocessing": preprocessing(0.5, 0.25, 48, [1 / 7] * 7).as_dict()})

    with pytest.raises(CheckpointError, match="a refit, trained on Training and PublicTest"):
        check_pair(student, ckpt({"source": student.source, "trained_on": ["Training", "PublicTest"]}), "t.pt")
    with pytest.raises(CheckpointError, match="t.pt: trained on other.csv, the student on"):
        check_pair(student, ckpt({"source": "other.csv"}), "t.pt")
    check_pair(student, Checkpoint.load(teacher), teacher)  # same data: accepted


def test_a_run_that_asks_for_a_teacher_without_one_is_refused(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text(kaggle_rows(30)[0])
    assert main(["train", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "r"), "train.distill=0.5",
                 *TINY_CNN]) == 2
    assert not (tmp_path / "r" / "checkpoint.pt").exists()
    with pytest.raises(ConfigError, match="train.distill needs a teacher"):
        from fer.config import load_run
        from fer.data.splits import split_for_training
        from fer.train import Trainer

        run = load_run(None, ["train.distill=0.5", *TINY_CNN])
        train, val, _ = split_for_training(load_data(str(data)), run["train"])
        next(Trainer.from_run(run, train, val).epochs())
