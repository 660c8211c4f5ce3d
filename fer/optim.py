"""The optimisers fer trains with (torch.optim's SGD, Adam and AdamW, stepped without torch._dynamo),
and the learning-rate schedules over them, built from a TrainConfig.

torch.optim wraps an optimiser's methods so that torch.compile leaves them alone, and the wrappers
import torch._dynamo on their first call: 1.2 s of CPU in every new process (measured on a 2-CPU
AMD EPYC), paid by every Tune trial worker before its first epoch and by the report's gradient
ascent. fer never compiles an optimiser, so these classes call the very same methods unwrapped:
the same update, the same `state_dict`, checkpoints interchangeable with torch.optim's, and the
LR schedulers and GradScaler work on them as on torch's (they are subclasses). Where a torch build
does not expose the unwrapped methods, the class is torch.optim's own: slower to start, not wrong.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim import SGD as _SGD
from torch.optim import Adam as _Adam
from torch.optim import AdamW as _AdamW
from torch.optim import Optimizer

from fer.config import TrainConfig

# Optimizer's own methods that torch wraps in torch._disable_dynamo (imports torch._dynamo on call)
_WRAPPED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def _eager(cls: type[Optimizer]) -> type[Optimizer]:
    """`cls` with its methods unwrapped; `cls` itself if this torch does not expose them."""
    methods = {name: getattr(getattr(Optimizer, name), "__wrapped__", None) for name in _WRAPPED}
    raw_step = getattr(cls.step, "__wrapped__", None)  # under _use_grad_for_differentiable
    if raw_step is None or None in methods.values():
        return cls

    def step(self, closure=None):
        # torch's wrapper: grad mode off unless the optimiser is differentiable (fer's never is)
        with torch.set_grad_enabled(self.defaults.get("differentiable", False)):
            return raw_step(self, closure)

    step.__doc__ = raw_step.__doc__
    doc = f"torch.optim.{cls.__name__}, its methods called without torch._dynamo (see fer.optim)."
    return type(cls.__name__, (cls,), {**methods, "step": step, "__doc__": doc, "__module__": __name__})


SGD = _eager(_SGD)
Adam = _eager(_Adam)
AdamW = _eager(_AdamW)


def optimizer_for(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                   weight_decay=cfg.weight_decay)
    cls = AdamW if cfg.optimizer == "adamw" else Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def one_cycle(p: float, warmup: float = 0.3, div: float = 25.0, final_div: float = 1e4) -> float:
    """lr / max lr at progress p in [0, 1]: the shape of torch's OneCycleLR with its defaults
    (cosine from max/25 up to max over the first 30%, then down to max/2.5e5), as a function
    of progress rather than of a step count fixed in advance. Momentum is not cycled."""
    start, end = 1 / div, 1 / (div * final_div)
    if p < warmup:
        return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * p / warmup))
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * (p - warmup) / (1 - warmup)))


def scheduler_for(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int,
                  progress: Callable[[int], float]):
    """Per-step schedules (cosine, one-cycle, step) and the per-epoch plateau schedule.
    Cosine and one-cycle follow `progress`, so a time budget shorter than the epochs still
    anneals them to ~0 by its end."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * progress(s))))
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: one_cycle(progress(s)))
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size * steps_per_epoch, gamma=cfg.gamma)
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=cfg.gamma,
                                                          patience=cfg.plateau_patience)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
