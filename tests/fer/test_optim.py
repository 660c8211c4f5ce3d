"""fer.optim: torch.optim's update and state, without torch._dynamo's import."""
import copy
import subprocess
import sys

import pytest
import torch

from fer import optim

CASES = [  # (fer's class, torch's, keyword arguments as fer.train passes them)
    (optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}),
    (optim.Adam, torch.optim.Adam, {"lr": 1e-2, "weight_decay": 1e-4}),
    (optim.AdamW, torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.05}),
]


def _steps(opt, params, grads):
    for g in grads:
        opt.zero_grad()
        for p, gp in zip(params, g):
            p.grad = gp.clone()
        opt.step()


def _problem(seed=0, steps=4):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(8, 3, 3, 3), (8,), (7, 8)]
    start = [torch.randn(s, generator=gen) for s in shapes]
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(steps)]
    return start, grads


@pytest.mark.parametrize("ours, theirs, kw", CASES, ids=["sgd", "adam", "adamw"])
def test_the_update_and_its_state_are_torchs(ours, theirs, kw):
    start, grads = _problem()
    a = [p.clone().requires_grad_() for p in start]
    b = [p.clone().requires_grad_() for p in start]
    opt_a, opt_b = ours(a, **kw), theirs(b, **kw)
    assert isinstance(opt_a, theirs)  # LR schedulers and GradScaler see torch's optimiser
    _steps(opt_a, a, grads[:2])  # (in place on leaves that require grad: it fails unless stepped without autograd)
    _steps(opt_b, b, grads[:2])
    assert all(torch.equal(x, y) for x, y in zip(a, b))

    # a checkpoint of either resumes in the other (copied: loading shares the state's tensors), alike
    resumed_in_torch = theirs([p.detach().clone().requires_grad_() for p in a], **kw)
    resumed_in_torch.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    resumed_in_fer = ours([p.detach().clone().requires_grad_() for p in b], **kw)
    resumed_in_fer.load_state_dict(copy.deepcopy(opt_b.state_dict()))
    x = resumed_in_torch.param_groups[0]["params"]
    y = resumed_in_fer.param_groups[0]["params"]
    for opt, params in ((resumed_in_torch, x), (resumed_in_fer, y), (opt_b, b)):
        _steps(opt, params, grads[2:])
    assert all(torch.equal(p, q) and torch.equal(p, r) for p, q, r in zip(x, y, b))


def test_a_run_trains_and_resumes_without_importing_torch_dynamo(tmp_path):
    """Every Tune trial worker would pay that import (1.2 s of CPU) before its first epoch. A run
    with each optimiser and schedule, autocast and a resume from its checkpoint, in a new process."""
    script = f"""
import sys
import numpy as np
from fer.checkpoint import Checkpoint
from fer.config import load_run
from fer.data import FaceSet
from fer.train import Trainer
rng = np.random.default_rng(0)
faces = FaceSet(rng.integers(0, 256, (96, 48, 48), dtype=np.uint8), np.arange(96) % 7, None, "hand-made")
base = ["model.name=cnn", "model.channels=[4]", "model.kernel_sizes=[3]", "model.head=gap", "model.head_hidden=[]",
        "train.batch_size=32", "train.epochs=1", "train.precision=auto"]
for extra in (["train.optimizer=sgd", "train.schedule=cosine", "train.momentum=0.9"],
              ["train.optimizer=adam", "train.schedule=plateau"], ["train.optimizer=adamw", "train.schedule=step"]):
    run = load_run(None, base + extra)
    trainer = Trainer.from_run(run, faces.subset(np.arange(64)), faces.subset(np.arange(64, 96)))
    trainer.fit()
    saved = trainer.checkpoint().save(r"{tmp_path}/c.pt")
    again = Trainer.from_run(load_run(None, base + extra + ["train.epochs=2"]), faces.subset(np.arange(64)),
                             faces.subset(np.arange(64, 96)))
    again.restore(Checkpoint.load(saved))
    assert [m["epoch"] for m in again.fit()] == [1, 2], "the resumed run did not go on"
print("torch._dynamo" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "False", "a training run imported torch._dynamo"
