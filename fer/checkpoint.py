"""Self-describing checkpoints: a checkpoint alone rebuilds its model and preprocessing.

Layout (one torch.save'd dict, loadable with weights_only=True):
  format, format_version, model {name, **config}, state_dict, classes, preprocessing,
  train_config, history [per-epoch metrics], metrics, best_epoch, data, versions,
  resume {optimizer, scheduler, generator} (to continue training).
Writes go to a temporary file that is renamed into place, so a crash never leaves a
half-written checkpoint under the final name.
"""
from __future__ import annotations

import pickle
import platform
import zipfile
from pathlib import Path

import torch

import fer
from fer.atomic import write_atomic
from fer.errors import CheckpointError
from fer.models import create_model

FORMAT = "fer-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("model", "state_dict", "preprocessing", "train_config")  # what rebuilding and scoring need


def versions() -> dict:
    """What wrote a checkpoint, stored inside it."""
    return {"fer": fer.__version__, "torch": str(torch.__version__), "python": platform.python_version()}


def save_checkpoint(payload: dict, path: str | Path) -> Path:
    return write_atomic(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | Path) -> dict:
    """The payload of a fer checkpoint, or a CheckpointError saying why it is not one."""
    path = checkpoint_file(Path(path))
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


def checkpoint_file(path: Path) -> Path:
    """The file itself, or a run folder's checkpoint.pt; a clear error for anything else."""
    if path.is_dir():
        if (path / "checkpoint.pt").is_file():
            return path / "checkpoint.pt"
        held = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
        shown = ", ".join(held[:8]) + (f" and {len(held) - 8} more" if len(held) > 8 else "")
        raise CheckpointError(f"{path}: a folder without checkpoint.pt (it holds: {shown or 'nothing'})")
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    return path


def model_from_checkpoint(payload: dict) -> torch.nn.Module:
    cfg = {k: v for k, v in payload["model"].items() if k != "name"}
    model = create_model(payload["model"]["name"], **cfg)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights do not fit its model config ({str(e).splitlines()[0]})") from None
    model.eval()
    return model


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    payload = load_checkpoint(path)
    return model_from_checkpoint(payload), payload


