"""What tests build: hand-made CSVs, a face set written as a CSV, tiny sweeps and tiny runs.
Fixtures that hold them for a session are in tests/conftest.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_CNN = ["model.name=cnn", "model.channels=[8,16]", "model.kernel_sizes=[3,3]", "model.head=gap",
            "model.head_hidden=[]", "train.batch_size=64"]  # a CNN that trains an epoch in about a second
TINY_RUNS = {"cnn": TINY_CNN, "dnn": ["model.name=seed_dnn"]}  # `fer train` overrides, per family


def kaggle_rows(n: int, seed: int = 0, usages=("Training", "PublicTest")) -> tuple[str, np.ndarray, np.ndarray]:
    """A tiny hand-made Kaggle-format CSV: text, its images (n,48,48) and labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 7, n)
    lines = ["emotion,pixels,Usage"]
    for i in range(n):
        lines.append(f"{labels[i]},{' '.join(map(str, images[i].ravel()))},{usages[i % len(usages)]}")
    return "\n".join(lines) + "\n", images, labels


def write_kaggle(faces, path) -> Path:
    """A FaceSet as a Kaggle-format CSV (Usage from its split tags)."""
    from fer.data import SPLITS

    lines = ["emotion,pixels,Usage"]
    for img, label, split in zip(faces.images, faces.labels, faces.split):
        lines.append(f"{label},{' '.join(map(str, img.ravel()))},{SPLITS[split]}")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


TINY_SWEEP = """
settings: {{num_samples: {n}, max_epochs: {epochs}, grace_period: 1, reduction_factor: 3, max_concurrent: {conc},
            cpus_per_trial: {cpus}, gpus_per_trial: {gpus}, max_failures: 2, scheduler: {sched}}}
sweeps:
  - name: cnn
    family: cnn
    model: {{channels: {{choice: [[4, 8], [8, 8]]}}, kernel_sizes: [3], convs_per_block: 1, head: gap, head_hidden: [],
            pool: max, dropout: 0.0, head_dropout: 0.0}}
    train: {{batch_size: 32, lr: {{loguniform: [1.0e-3, 3.0e-2]}}}}
"""


def tiny_sweep(path, n=4, epochs=2, conc=2, cpus=1, gpus=0, sched="asha") -> Path:
    Path(path).write_text(TINY_SWEEP.format(n=n, epochs=epochs, conc=conc, cpus=cpus, gpus=gpus, sched=sched))
    return Path(path)


def search_in_fresh_process(argv: list[str], modules: tuple[str, ...]) -> tuple[int, list[bool]]:
    """`python -m search ARGV` in a new interpreter: (its exit code, whether each of `modules` was
    imported by then), for what a command's start-up loads."""
    import subprocess
    import sys

    code = ("import sys; from search.cli import main; code = main(sys.argv[2:]); "
            "print(code, *(m in sys.modules for m in sys.argv[1].split(',')))")
    done = subprocess.run([sys.executable, "-c", code, ",".join(modules), *argv], capture_output=True, text=True,
                          timeout=60)
    words = done.stdout.split()[-1 - len(modules):]
    assert len(words) == 1 + len(modules), done.stdout + done.stderr
    return int(words[0]), [w == "True" for w in words[1:]]
