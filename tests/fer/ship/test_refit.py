"""Refit: the chosen config trained again on every row but PrivateTest, for its peak epochs;
the checkpoint says what it saw, and `fer evaluate` scores it on PrivateTest only."""
import pytest

from fer.checkpoint import Checkpoint, load_checkpoint, preprocessing
from fer.cli import main
from fer.ship.refit import refit, refit_config
from tests.factories import kaggle_rows

TINY = ["model.name=cnn", "model.channels=[4,8]", "model.kernel_sizes=[3,3]", "model.head=gap",
        "model.head_hidden=[]", "train.batch_size=32"]


def test_refit_config_runs_the_peak_epochs_on_a_budget_scaled_to_the_rows():
    ckpt = Checkpoint({"model": {"name": "seed_dnn"}, "best_epoch": 7, "data": {"train_n": 1000},
               "preprocessing": preprocessing(0.5, 0.25, 48, [1 / 7] * 7, logit_adjust=0.4).as_dict(),
               "train_config": {"epochs": 30, "early_stopping": 5, "balance_within": 0.01, "time_budget_s": 100.0}})
    train = refit_config(ckpt, 1120)["train"]
    assert train["epochs"] == 7 and train["time_budget_s"] == pytest.approx(112.0)
    assert (train["early_stopping"], train["balance_within"], train["logit_adjust"]) == (0, 0.0, 0.4)


@pytest.fixture(scope="module")
def refitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("refit")
    (root / "data.csv").write_text(kaggle_rows(70, usages=("Training", "PublicTest", "PrivateTest"))[0])
    assert main(["train", "--data", str(root / "data.csv"), "--epochs", "3", "--out", str(root / "run"), *TINY]) == 0
    chosen = Checkpoint.load(root / "run")
    from fer.data import load_data

    new = refit(chosen, load_data(str(root / "data.csv")), root / "refit")
    return root, chosen, new


def test_a_refit_records_what_it_saw_and_keeps_its_last_epoch(refitted):
    root, chosen, new = refitted
    saved = load_checkpoint(root / "refit")
    assert saved["data"]["trained_on"] == ["Training", "PublicTest"] and saved["data"]["train_n"] == 47
    assert saved["best_epoch"] == len(saved["history"]) == chosen.best_epoch
    assert not any(k.startswith("val_") for k in saved["metrics"])


@pytest.mark.parametrize("split", ["PublicTest", "Training", "validation"])
def test_evaluate_refuses_a_refit_on_a_split_it_trained_on(refitted, capsys, split):
    root, _, _ = refitted
    assert main(["evaluate", str(root / "refit"), "--split", split]) == 2
    err = capsys.readouterr().err.strip()
    assert "a refit, trained on Training and PublicTest" in err and "\n" not in err


def test_evaluate_scores_a_refit_on_private_test(refitted, capsys):
    root, _, _ = refitted
    assert main(["evaluate", str(root / "refit"), "--split", "PrivateTest", "--json"]) == 0
    assert '"split": "PrivateTest"' in capsys.readouterr().out


def test_a_refit_is_not_refitted_again(refitted):
    from fer.errors import CheckpointError

    root, _, new = refitted
    with pytest.raises(CheckpointError, match="a refit already"):
        refit(new, None, root / "again")


def test_a_refit_has_no_split_left_to_calibrate_on(tmp_path):
    from fer.calibration import recalibrate
    from fer.errors import FerError

    refit = Checkpoint({"model": {"name": "seed_dnn"}, "data": {"trained_on": ["Training", "PublicTest"]},
                        "preprocessing": preprocessing(0.5, 0.25, 48, [1 / 7] * 7).as_dict(), "train_config": {}},
                       tmp_path / "checkpoint.pt")
    with pytest.raises(FerError, match="a refit, trained on every split but PrivateTest: no split is left"):
        recalibrate(refit, data=str(tmp_path / "never-read.csv"))
