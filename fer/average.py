"""An exponential moving average of a model's weights, to be scored beside the model itself.

Why: late in a run the weights wander around a minimum; their average sits nearer its centre,
which often generalises better than the last iterate (Polyak averaging; SWA, Izmailov et al.
2018). The average's batch-norm statistics are not averaged: they are recomputed for the averaged
weights on training images before it is scored, as SWA prescribes. fer.train scores both at each
validation and keeps the better (`train.ema`); BENCHMARKS.md says what it bought.
"""
from __future__ import annotations

import copy

import torch

BN_IMAGES = 2048  # training images the average's batch norms take their statistics from (1/14 of FER2013's)


class WeightAverage:
    """`decay` per optimiser step; the first steps follow the weights closely (the effective decay
    is min(decay, (1 + t) / (10 + t)) at step t, as TensorFlow's and timm's averages warm up)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.steps = decay, 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for avg, new in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(new.detach(), 1 - decay)

    @torch.no_grad()
    def recompute_batch_norm(self, batches) -> None:
        """Each batch norm's running statistics = the plain mean over `batches` (input tensors, as
        the model is evaluated on them) of what the averaged weights feed it. Only the batch norms
        are in training mode: dropout stays off, as at evaluation, and draws nothing from the run's
        random generator."""
        kinds = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
        norms = [m for m in self.model.modules() if isinstance(m, kinds)]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches
            m.train()
        for x in batches:
            self.model(x)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            m.eval()

    def state_dict(self) -> dict:
        return {"weights": self.model.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["weights"])
        self.steps = int(state["steps"])
