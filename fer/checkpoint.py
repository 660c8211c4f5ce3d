"""Self-describing checkpoints: a checkpoint alone rebuilds its model and preprocessing.

Layout (one torch.save'd dict, loadable with weights_only=True):
  format, format_version, model {name, **config}, state_dict, classes, preprocessing,
  train_config, history [per-epoch metrics], metrics, best_epoch, data, versions,
  resume {optimizer, scheduler, generator; with train.ema also model, the weights training goes on
  from, and average} (to continue training).
`Checkpoint` is the only code that builds or reads this dict.
Writes go to a temporary file that is renamed into place, so a crash never leaves a
half-written checkpoint under the final name.
"""
from __future__ import annotations

import dataclasses
import pickle
import platform
import zipfile
from pathlib import Path

import torch

import fer
from fer.atomic import write_atomic
from fer.classifier import Classifier
from fer.data import CLASSES
from fer.errors import CheckpointError
from fer.models import model_from_spec
from fer.models.ensemble import Member
from fer.remote import is_local, local_file, location

FORMAT = "fer-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("model", "state_dict", "preprocessing", "train_config")  # what rebuilding and scoring need


def versions() -> dict:
    """What wrote a checkpoint, stored inside it."""
    return {"fer": fer.__version__, "torch": str(torch.__version__), "python": platform.python_version()}


def load_checkpoint(path: str | Path) -> dict:
    """The stored dict of a fer checkpoint, or a CheckpointError saying why it is not one
    (Checkpoint.load wraps it; tests read the layout through it)."""
    path = checkpoint_file(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive; anything else is another kind of file
        kind = "an empty file" if not magic else "not a PyTorch file"
        raise CheckpointError(f"{path}: not a fer checkpoint ({kind})")
    if is_torchscript(path):
        raise CheckpointError(f"{path}: a TorchScript file, not a fer checkpoint (fer predict reads it with "
                              "--trust-torchscript)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise CheckpointError(f"{path}: a PyTorch file that cannot be read, truncated or corrupt ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a fer checkpoint (a PyTorch file without the '{FORMAT}' marker)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {payload['format_version']} is newer than this "
                              f"fer understands ({FORMAT_VERSION})")
    missing = [k for k in REQUIRED if not isinstance(payload.get(k), dict)]
    if missing or "name" not in payload["model"]:
        raise CheckpointError(f"{path}: a fer checkpoint without {', '.join(missing) or 'model.name'}: "
                              "cut down or written by hand, it cannot rebuild its model")
    return payload


def truncated(path: Path) -> bool:
    """Whether a checkpoint file is provably cut short: empty, or a zip archive (torch.save's
    format) that lost its end. A whole file of another kind or format is not; an I/O error
    reading it raises OSError, since it proves nothing."""
    size = path.stat().st_size
    if size == 0:
        return True
    with open(path, "rb") as f:
        magic = f.read(4)
        f.seek(max(0, size - (1 << 16)))
        tail = f.read()
    return magic == b"PK\x03\x04" and b"PK\x05\x06" not in tail  # no end-of-central-directory record


def is_torchscript(path: Path) -> bool:
    """Whether a file is a TorchScript archive (a zip holding code/ or constants.pkl)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _is_sweep(folder: Path) -> bool:
    """Whether a folder is a Tune experiment (one sweep of `search run`): Tune's state file. Only
    for the error's hint: a user who hands `fer evaluate` the results of a sweep is told where its
    checkpoints are (fer reads no sweep itself)."""
    return any(folder.glob("experiment_state-*.json"))


def checkpoint_file(path: str | Path) -> Path:
    """The file itself, or a run folder's checkpoint.pt; a clear error for anything else. At a
    storage URI (s3://...), a local copy fetched once into the cache (fer.remote)."""
    if not is_local(path):
        remote = location(path)
        return local_file(remote / "checkpoint.pt" if remote.is_dir() else remote)
    path = Path(path)
    if path.is_dir():
        if (path / "checkpoint.pt").is_file():
            return path / "checkpoint.pt"
        if _is_sweep(path) or any(_is_sweep(p) for p in path.iterdir() if p.is_dir()):
            raise CheckpointError(f"{path}: a sweep's results, not a checkpoint: `python -m search best {path}` "
                                  "names the best trials' checkpoints")
        held = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
        shown = ", ".join(held[:8]) + (f" and {len(held) - 8} more" if len(held) > 8 else "")
        raise CheckpointError(f"{path}: a folder without checkpoint.pt (it holds: {shown or 'nothing'})")
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    return path


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """A checkpoint's `preprocessing` entry: how raw pixels become the model's input, and how its
    logits become probabilities (fer.classifier.Classifier.of reads it). Stored as a plain dict
    (`as_dict`), read back with `from_dict`; a change is a new value (`dataclasses.replace`)."""

    mean: float
    std: float
    crop_size: int
    class_prior: tuple[float, ...]  # (7,) the training set's class shares
    logit_adjust: float = 0.0  # tau of the prior correction (0: none)
    temperature: float = 1.0
    INPUT = "48x48 grayscale, uint8 0-255"

    def as_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "crop_size": self.crop_size, "input": self.INPUT,
                "class_prior": list(self.class_prior), "logit_adjust": self.logit_adjust,
                "temperature": self.temperature}

    @classmethod
    def from_dict(cls, entry: dict) -> Preprocessing:
        missing = [k for k in ("mean", "std", "crop_size", "class_prior") if k not in entry]
        if missing:
            raise CheckpointError(f"checkpoint preprocessing: {', '.join(missing)} missing")
        return preprocessing(entry["mean"], entry["std"], entry["crop_size"], entry["class_prior"],
                             entry.get("logit_adjust", 0.0), entry.get("temperature", 1.0))


def preprocessing(mean: float, std: float, crop_size: int, class_prior, logit_adjust: float = 0.0,
                  temperature: float = 1.0) -> Preprocessing:
    """A Preprocessing of plain Python numbers (numpy scalars in, floats out)."""
    return Preprocessing(float(mean), float(std), int(crop_size), tuple(float(p) for p in class_prior),
                         float(logit_adjust), float(temperature))


class Checkpoint:
    """A fer checkpoint: its stored dict (the layout above) behind typed accessors, the one
    builder of that dict, and the model it rebuilds. Every reader outside this module asks
    these accessors, so a change to the layout is a change here."""

    def __init__(self, payload: dict, path: Path | None = None):
        self.payload, self.path = payload, path
        self._model: torch.nn.Module | None = None

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        """The checkpoint at a file or run folder, or a CheckpointError in one line."""
        return cls(load_checkpoint(path), checkpoint_file(path))

    @classmethod
    def build(cls, spec: dict, state_dict: dict, preprocessing: Preprocessing, train_config: dict, *,
              history: list | None = None, metrics: dict | None = None, best_epoch: int = 0,
              data: dict | None = None, speed: dict | None = None, resume: dict | None = None) -> Checkpoint:
        """A new checkpoint: `spec` is {"name", **config} (fer.models.model_from_spec), the
        state dict is copied to the CPU, the classes and the writing versions are stamped."""
        payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": dict(spec),
                   "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "classes": list(CLASSES),
                   "preprocessing": preprocessing.as_dict(), "train_config": dict(train_config),
                   "history": list(history or []), "metrics": dict(metrics or {}), "best_epoch": int(best_epoch),
                   "data": dict(data or {}), "versions": versions()}
        if speed is not None:
            payload["speed"] = speed  # what precision and layout were chosen from, and the rates
        if resume is not None:
            payload["resume"] = resume  # {optimizer, scheduler, generator[, model, average]}: to continue
        return cls(payload)

    def save(self, path: str | Path) -> Path:
        self.path = write_atomic(path, lambda f: torch.save(self.payload, f))
        return self.path

    # -- what it holds -------------------------------------------------------------------
    @property
    def spec(self) -> dict:
        """{"name": family or preset, **config}: what rebuilds the model."""
        return self.payload["model"]

    @property
    def family(self) -> str:
        return self.spec["name"]

    @property
    def members(self) -> list[Member]:
        """An ensemble's members (fer.models.ensemble.Member); empty for one model."""
        return [Member.from_dict(m) for m in self.spec.get("members") or []]

    @property
    def state_dict(self) -> dict:
        return self.payload["state_dict"]

    @property
    def prep(self) -> Preprocessing:
        return Preprocessing.from_dict(self.payload["preprocessing"])

    @property
    def train_config(self) -> dict:
        return self.payload["train_config"]

    @property
    def tta(self) -> str:
        return self.train_config.get("tta", "none")

    @property
    def views(self) -> str:
        """The test-time views it runs: its own, or its members' joined ("flip+shifts")."""
        return "+".join(m.tta for m in self.members) if self.members else self.tta

    @property
    def precision(self) -> str:
        return self.train_config.get("precision", "auto")

    @property
    def temperature(self) -> float:
        return self.prep.temperature

    @property
    def logit_adjust(self) -> float:
        return self.prep.logit_adjust

    @property
    def history(self) -> list[dict]:
        return list(self.payload.get("history") or [])

    @property
    def metrics(self) -> dict:
        return self.payload.get("metrics") or {}

    @property
    def best_epoch(self) -> int:
        return int(self.payload.get("best_epoch") or 0)

    @property
    def elapsed_s(self) -> float:
        """Seconds of training the run had spent by its last epoch (fer.clock.RunClock's state)."""
        return float(self.history[-1].get("elapsed_s", 0.0)) if self.history else 0.0

    @property
    def val_split(self) -> str:
        """The split the run selected its epoch on ("PublicTest", or "holdout" of Training)."""
        return self.data.get("val_split") or "PublicTest"

    @property
    def data(self) -> dict:
        """source, train_n, val_n, val_split, and for a refit trained_on (fer.data.splits.data_entry)."""
        return self.payload.get("data") or {}

    @property
    def source(self) -> str | None:
        return self.data.get("source")

    @property
    def trained_on(self) -> list[str] | None:
        """The splits a refit trained on; None for a run that kept rows to select on."""
        return self.data.get("trained_on")

    @property
    def speed(self) -> dict | None:
        """The fer.speed record the run chose its precision and layout from."""
        return self.payload.get("speed")

    @property
    def resume(self) -> dict:
        return self.payload.get("resume") or {}

    # -- what it rebuilds ----------------------------------------------------------------
    @property
    def model(self) -> torch.nn.Module:
        """The network with its weights, in eval mode (built once, on the CPU)."""
        if self._model is None:
            self._model = rebuild(self.spec, self.state_dict)
        return self._model

    def classifier(self, model: torch.nn.Module | None = None) -> Classifier:
        """The network with this checkpoint's preprocessing, views, temperature and prior
        correction: raw pixels -> probabilities (fer.classifier)."""
        return Classifier.of(model if model is not None else self.model, self.prep, self.tta)

    def with_prep(self, **changes) -> Checkpoint:
        """A copy whose preprocessing differs by `changes` (e.g. logit_adjust=0.0), sharing the model."""
        other = Checkpoint({**self.payload, "preprocessing": dataclasses.replace(self.prep, **changes).as_dict()},
                           self.path)
        other._model = self._model
        return other


def rebuild(spec: dict, state_dict: dict) -> torch.nn.Module:
    model = model_from_spec(spec)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights do not fit its model config ({str(e).splitlines()[0]})") from None
    return model.eval()
