"""What `search run` asks for, beyond the spaces: one object from the CLI through the engine to
each sweep's Tuner, so no layer re-lists its fields as arguments."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    name: str  # the experiment: a folder under `storage`, and the prefix of its studies' names
    storage: str  # an absolute folder, or a URI
    data: str | None = None  # overrides every space's `data:`
    address: str | None = None  # a running Ray cluster (None: start one here, or RAY_ADDRESS)
    seed: int = 0
    resume: bool = False
    optuna_storage: str | None = None  # None: optuna.db in each sweep's folder
    imported: dict = field(default_factory=dict)  # sweep name -> warm-start trials (search.warmstart)
    verbose: bool = False

    def imported_for(self, sweep: str) -> list | None:
        return self.imported.get(sweep)
