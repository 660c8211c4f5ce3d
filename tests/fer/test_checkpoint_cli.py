import json

import numpy as np
import pytest
import torch
from PIL import Image

from fer.checkpoint import Checkpoint, load_checkpoint
from fer.cli import main
from fer.errors import CheckpointError
from tests.factories import TINY_CNN, kaggle_rows

TINY = TINY_CNN


@pytest.fixture
def trained(trained_runs):
    return trained_runs["cnn"]  # `fer train --epochs 2` of TINY_CNN, once per session


def test_train_writes_self_describing_checkpoint(trained):
    payload = load_checkpoint(trained / "checkpoint.pt")
    assert payload["model"]["name"] == "cnn" and payload["model"]["channels"] == [8, 16]
    assert payload["classes"][1] == "disgust" and len(payload["history"]) == 2
    assert {"mean", "std", "crop_size"} <= set(payload["preprocessing"])
    assert payload["train_config"]["epochs"] == 2 and payload["versions"]["torch"]
    model = Checkpoint(payload).model  # rebuilt from the checkpoint alone
    assert model(torch.zeros(1, 1, 48, 48)).shape == (1, 7)
    assert (trained / "config.yaml").exists() and not list(trained.glob("*.tmp"))


def test_evaluate_json(trained, capsys):
    assert main(["evaluate", str(trained / "checkpoint.pt"), "--json", "--split", "test"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"data", "split", "selected_on_this_split", "accuracy", "macro_f1", "n", "per_class",
                        "macro_avg", "weighted_avg", "confusion_matrix", "ece", "nll"}
    assert (out["data"], out["split"], out["selected_on_this_split"]) == ("synthetic", "PrivateTest", False)
    assert np.array(out["confusion_matrix"]).shape == (7, 7) and np.sum(out["confusion_matrix"]) == out["n"]
    assert out["per_class"]["happy"]["support"] == 90


def test_evaluate_source_without_splits_is_used_whole(trained, write_csv, capsys):
    text, _, _ = kaggle_rows(6)
    rows = "\n".join("{},{}".format(*line.split(",")[:2]) for line in text.splitlines()[1:])
    path = write_csv("label,feature\n" + rows + "\n")
    assert main(["evaluate", str(trained), "--data", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 6


def test_predict_prints_label_and_probabilities(trained, tmp_path, capsys):
    img = tmp_path / "face.png"
    Image.fromarray(np.full((60, 60, 3), 128, np.uint8)).save(img)
    assert main(["predict", str(trained), str(img)]) == 0
    path, label, scores = capsys.readouterr().out.strip().split("\t")
    probs = [float(s.split("=")[1]) for s in scores.split()]
    assert label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert len(probs) == 7 and abs(sum(probs) - 1) < 0.01


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "not a fer checkpoint (an empty file)"),
    (lambda p: torch.save({"weights": 1}, p), "not a fer checkpoint"),
    (lambda p: p.write_text("model: {name: seed_cnn}\n"), "not a fer checkpoint (not a PyTorch file)"),
    (lambda p: Image.new("L", (48, 48)).save(p, format="PNG"), "not a fer checkpoint (not a PyTorch file)"),
    (lambda p: (p.mkdir(), (p / "config.yaml").write_text("x: 1\n")), "a folder without checkpoint.pt (it holds: "
                                                                       "config.yaml)"),
    (lambda p: ((p / "cnn").mkdir(parents=True), (p / "cnn" / "experiment_state-2026.json").write_text("{}")),
     "c.pt: a sweep's results, not a checkpoint: `python -m search best {path}` names the best trials' checkpoints"),
    (lambda p: (p.mkdir(), (p / "experiment_state-2026.json").write_text("{}")),
     "c.pt: a sweep's results, not a checkpoint: `python -m search best {path}`"),
])
def test_bad_checkpoints_exit_2_with_one_line(tmp_path, capsys, make, message):
    path = tmp_path / "c.pt"
    make(path)
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message.format(path=path) in err and len(err.splitlines()) == 1


def test_truncated_checkpoint(trained, tmp_path):
    data = (trained / "checkpoint.pt").read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "t.pt")


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "/nonexistent.csv", "model.name=seed_dnn"], "/nonexistent.csv: no such file"),
    (["train", "--config", "/nonexistent.yaml"], "no such config file"),
    (["train", "--epochs", "1"], "no model to train: give --config FILE (configs/runs/ holds the course report's "
                                 "two) or model.name=NAME (one of cnn, dnn, seed_cnn, seed_dnn, small_cnn, vgg_cnn)"),
    (["train", "model.name=seed_cnn", "train.lrate=1"], "train.lrate: unknown key"),
    (["train", "model.nme=seed_cnn"], "model.name: missing (model's keys: nme; e.g. model: {name: seed_cnn})"),
    (["train", "model.name=seed_dnn", "train.seed=-1"], "train.seed: must be in [0, 2**32)"),  # before any work
    (["predict", "/nonexistent.pt", "x.png"], "no such checkpoint"),
])
def test_cli_errors(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("fer: error:")


def test_bad_data_writes_no_checkpoint(write_csv, tmp_path, capsys):
    path = write_csv("emotion,pixels,Usage\n3,1 2 3,Training\n")
    out = tmp_path / "out"
    assert main(["train", "--data", str(path), "--out", str(out), "model.name=seed_dnn"]) == 2
    assert "line 2: expected 2304 pixels" in capsys.readouterr().err
    assert not (out / "checkpoint.pt").exists()


def test_summary_cli(capsys):
    assert main(["summary", "seed_cnn"]) == 0
    assert "Trainable params: 1,276,606" in capsys.readouterr().out


def test_checkpoint_records_an_absolute_data_path(write_csv, tmp_path, monkeypatch):
    from tests.factories import kaggle_rows

    path = write_csv(kaggle_rows(14)[0])
    monkeypatch.chdir(path.parent)
    out = tmp_path / "abs"
    assert main(["train", "--data", path.name, "--epochs", "1", "--out", str(out), *TINY]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["data"]["source"] == str(path)


def test_evaluate_says_when_it_scores_the_selection_split(write_csv, tmp_path, capsys):
    path = write_csv(kaggle_rows(28)[0])  # Training and PublicTest only: no independent split
    assert main(["train", "--data", str(path), "--epochs", "1", "--out", str(tmp_path / "r"), *TINY]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "r"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["data"], out["split"], out["selected_on_this_split"]) == (str(path), "PublicTest", True)
    assert main(["evaluate", str(tmp_path / "r")]) == 0
    assert "note: PublicTest is the split this checkpoint was selected on" in capsys.readouterr().out


def test_scientific_notation_in_overrides_and_configs(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("model: {name: seed_dnn}\ntrain: {lr: 1e-4, weight_decay: 5E-4, epochs: 1}\n")
    out = tmp_path / "r"
    assert main(["train", "--config", str(config), "--out", str(out), "train.lr=3e-4"]) == 0
    cfg = load_checkpoint(out / "checkpoint.pt")["train_config"]
    assert (cfg["lr"], cfg["weight_decay"]) == (3e-4, 5e-4)


def test_an_out_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert main(["train", "--epochs", "1", "--out", str(notes), *TINY]) == 2
    err = capsys.readouterr()
    assert err.err.strip() == f"fer: error: --out {notes}: a file, not a folder: name a folder to write into"
    assert "training" not in err.out and notes.read_text() == "mine"


def test_a_second_train_into_a_run_folder_is_refused_unless_overwrite(tmp_path, capsys, tiny_csv):
    out, data = tmp_path / "r", ["--data", str(tiny_csv)]
    assert main(["train", "--epochs", "1", "--out", str(out), *data, *TINY]) == 0
    before = (out / "checkpoint.pt").read_bytes()
    assert main(["train", "--epochs", "1", "--out", str(out), *data, *TINY, "train.seed=3"]) == 2
    err = capsys.readouterr().err
    assert f"{out}: holds a run (checkpoint.pt): give another --out, or --overwrite" in err
    assert (out / "checkpoint.pt").read_bytes() == before  # the first run, untouched
    assert main(["train", "--epochs", "1", "--out", str(out), "--overwrite", *data, *TINY, "train.seed=3"]) == 0
    assert (out / "checkpoint.pt").read_bytes() != before


@pytest.mark.parametrize("flag", ["0", "-3", "ten"])
def test_train_refuses_a_bad_epoch_count(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--epochs", flag, "--out", str(tmp_path / "r"), *TINY])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --epochs: must be a positive integer" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("setting, message", [
    ("train.lr=.nan", "train.lr: must be a finite number, got nan"),
    ("train.lr=-1e-3", "train.lr: must be > 0"),
    ("train.weight_decay=-.1", "train.weight_decay: must be >= 0"),
    ("train.momentum=1.5", "train.momentum: must be in [0, 1)"),
    ("train.label_smoothing=1", "train.label_smoothing: must be in [0, 1)"),
    ("train.val_fraction=0", "train.val_fraction: must be in (0, 1)"),
    ("train.eval_batch_size=0", "train.eval_batch_size: must be >= 1"),
    ("train.step_size=0", "train.step_size: must be >= 1"),
    ("train.time_budget_s=.inf", "train.time_budget_s: must be a finite number"),
    ("train.device=gpu", "train.device: must be auto, cpu, mps, cuda or cuda:N, got 'gpu'"),
])
def test_every_bad_training_setting_is_one_line_before_any_work(tmp_path, capsys, setting, message):
    out = tmp_path / "out"
    assert main(["train", "--out", str(out), "model.name=seed_dnn", setting]) == 2
    err = capsys.readouterr().err
    assert err == f"fer: error: {message}" + err.split(message, 1)[1] and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_loss_that_diverges_at_once_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", "--out", str(out), "--epochs", "3", "model.name=seed_dnn", "train.optimizer=sgd",
                 "train.lr=1e6"]) == 2
    err = capsys.readouterr().err
    assert "training diverged in epoch 1 (training loss nan) before any epoch worth keeping" in err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_a_checkpoint_missing_keys_is_one_line(trained, tmp_path, capsys):
    payload = load_checkpoint(trained)
    for key in ("state_dict", "preprocessing"):
        path = tmp_path / f"no_{key}.pt"
        torch.save({k: v for k, v in payload.items() if k != key}, path)
        assert main(["evaluate", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"a fer checkpoint without {key}" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("usages, message", [
    (("PrivateTest",), "only PrivateTest rows, which are kept for the final evaluation"),
    (("Training", "PublicTest"), "1 Training image: training needs at least 2"),
])
def test_data_too_thin_to_train_on_is_one_line(write_csv, tmp_path, capsys, usages, message):
    text, _, _ = kaggle_rows(2 if len(usages) == 2 else 5, usages=usages)
    out = tmp_path / "out"
    assert main(["train", "--data", str(write_csv(text)), "--out", str(out), "model.name=seed_dnn"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1 and not out.exists()


def test_train_flags_come_from_train_config_and_win_over_key_value(tmp_path, tiny_csv):
    """--lr, --batch-size, --optimizer ... are TrainConfig's option fields: set as given, over train.KEY=."""
    from fer.config import load_yaml

    out = tmp_path / "r"
    assert main(["train", "--epochs", "1", "--lr", "5e-3", "--batch-size", "16", "--optimizer", "sgd",
                 "--data", str(tiny_csv), "--out", str(out), *TINY, "train.lr=0.5"]) == 0
    train = load_yaml(out / "config.yaml")["train"]
    assert (train["epochs"], train["lr"], train["batch_size"], train["optimizer"]) == (1, 5e-3, 16, "sgd")


def test_a_flag_out_of_its_range_says_so_as_the_config_would(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--lr", "0", "--out", str(tmp_path / "r"), *TINY])
    assert "argument --lr: must be a number > 0, got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--lr", "abc", "--out", str(tmp_path / "r"), *TINY])
    assert "argument --lr: must be a number > 0, got 'abc'" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r"), *TINY, "train.lr=0"]) == 2
    assert "train.lr: must be > 0, got 0" in capsys.readouterr().err  # one range, one wording
