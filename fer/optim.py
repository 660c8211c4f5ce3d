"""The optimisers fer trains with: torch.optim's SGD, Adam and AdamW, stepped without torch._dynamo.

torch.optim wraps an optimiser's methods so that torch.compile leaves them alone, and the wrappers
import torch._dynamo on their first call: 1.2 s of CPU in every new process (measured on a 2-CPU
AMD EPYC), paid by every Tune trial worker before its first epoch and by the report's gradient
ascent. fer never compiles an optimiser, so these classes call the very same methods unwrapped:
the same update, the same `state_dict`, checkpoints interchangeable with torch.optim's, and the
LR schedulers and GradScaler work on them as on torch's (they are subclasses). Where a torch build
does not expose the unwrapped methods, the class is torch.optim's own: slower to start, not wrong.
"""
from __future__ import annotations

import torch
from torch.optim import SGD as _SGD
from torch.optim import Adam as _Adam
from torch.optim import AdamW as _AdamW
from torch.optim import Optimizer

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

