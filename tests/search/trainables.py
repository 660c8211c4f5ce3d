"""Trial functions that stand in for training in tests of the sweep's machinery. A Tune worker
imports the module its trial function lives in: these import only Ray Tune (no torch, fer,
search or optuna), so each trial's worker starts in about a second less of CPU than one that
imports a test module."""
import json
import tempfile
import time
from pathlib import Path

from ray import tune

CURVE = [0.5, 0.7, 0.4, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]  # x the trial's scale: the best epoch is never the last


def scripted_train(config, faces=None, deadline=None, **params):
    """Reports CURVE scaled by the trial's lr, with a checkpoint naming its epoch: ASHA stops
    some trials at a rung, and every trial's best epoch (2) is behind its last."""
    scale, start = config["train"]["lr"] * 20, 0
    if (ckpt := tune.get_checkpoint()) is not None:  # restarted with more CPUs, or retried
        with ckpt.as_directory() as d:
            start = int((Path(d) / "checkpoint.pt").read_text())
    for epoch, v in list(enumerate(CURVE, 1))[start:]:
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "checkpoint.pt").write_text(str(epoch))
            tune.report({"val_acc": v * scale, "num_params": 1234, "epoch": epoch, "train_loss": 1.0, "lr": 0.1,
                         "epoch_s": 0.01, "run_ends": "epochs" if epoch == len(CURVE) else ""},
                        checkpoint=tune.Checkpoint.from_directory(d))


def endless_train(config, faces=None, deadline=None, **params):
    """Epochs until Tune stops the trial (the sweep's deadline is ignored): a falling score after epoch 2."""
    for epoch in range(1, 100_000):
        time.sleep(0.2)
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "checkpoint.pt").write_text(str(epoch))
            tune.report({"val_acc": 1.0 / (1 + abs(epoch - 2)), "num_params": 1, "epoch": epoch, "train_loss": 1.0,
                         "lr": 0.1, "epoch_s": 0.2, "run_ends": ""}, checkpoint=tune.Checkpoint.from_directory(d))


def sleeping_trial(config, faces=None, deadline=None, progress_to=None, report=None):
    """A trial on a machine that is slow for two epochs (1.5 s each) and then fast (0.25 s): it sleeps
    instead of training, scores by its lr (so ASHA has a ranking), checkpoints its state every
    epoch (so it can grow onto freed CPUs), and leaves when its next epoch would pass the deadline."""
    import tempfile

    state = {"epoch": 0, "elapsed": 0.0}
    if (ckpt := tune.get_checkpoint()) is not None:
        with ckpt.as_directory() as d:
            state = json.loads((Path(d) / "state.json").read_text())
    while True:
        epoch_s = 1.5 if state["epoch"] < 2 else 0.25
        if deadline and time.time() + epoch_s > deadline:
            return
        time.sleep(epoch_s)
        state = {"epoch": state["epoch"] + 1, "elapsed": state["elapsed"] + epoch_s}
        metrics = {"val_acc": config["train"]["lr"] * (1 - 1 / (1 + state["epoch"])), "train_loss": 1.0,
                   "lr": config["train"]["lr"], "epoch_s": epoch_s, "epoch_wall_s": epoch_s,
                   "elapsed_s": state["elapsed"], "run_ends": ""}
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "state.json").write_text(json.dumps(state))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
