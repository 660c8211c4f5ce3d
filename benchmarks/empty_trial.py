"""A near-empty Tune trial for benchmarks/driver_scale.py, in a module of its own: each trial
process imports only this and Ray Tune (not torch), so that many fit in one machine's memory."""
from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from ray import tune


def empty_trial(config: dict, epoch_s: float = 0.5, deadline: float | None = None, **params) -> None:
    """What a fer trial reports, without training: epochs of `epoch_s` seconds, each with a
    4 KB checkpoint; a resumed trial (paused to grow, or retried) continues from it."""
    epoch = 0
    if (ckpt := tune.get_checkpoint()) is not None:
        with ckpt.as_directory() as d:
            epoch = int((Path(d) / "epoch").read_text())
    lr = config["train"]["lr"]
    quality = random.Random(lr).random()
    while True:
        epoch += 1
        time.sleep(epoch_s)
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "epoch").write_text(str(epoch))
            (Path(d) / "checkpoint.pt").write_bytes(bytes(4096))
            acc = 0.2 + 0.5 * quality * (1 - 0.5**epoch)
            tune.report({"val_acc": acc, "val_macro_f1": acc, "train_loss": 1.0, "lr": lr, "epoch_s": epoch_s,
                         "epoch": epoch, "run_ends": "", "num_params": 1},
                        checkpoint=tune.Checkpoint.from_directory(d))
