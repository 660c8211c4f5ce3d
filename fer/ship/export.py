"""Ship a checkpoint: one graph from uint8 faces to class probabilities, as ONNX or TorchScript,
checked against PyTorch before it is called done.

The graph is the checkpoint's fer.classifier.Classifier (which `predict_checkpoint` runs too),
so a deployment needs no fer code: pixel scaling and the training set's standardisation, the
checkpoint's test-time views and their softmax average, its temperature and prior correction.
Input (N, 48, 48) uint8; output (N, 7) float32.
onnxruntime is imported only to run an ONNX file (fer itself needs PyTorch alone).
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fer.atomic import replace_with
from fer.checkpoint import Checkpoint, is_torchscript
from fer.classifier import Classifier
from fer.errors import CheckpointError

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
PARITY_TOLERANCE = 1e-4  # max abs difference of probabilities against PyTorch
PARITY_IMAGES = 64


class Deployable(torch.nn.Module):
    """A checkpoint's Classifier (its preprocessing, TTA, temperature and prior correction) with
    the deployed input layout: uint8 faces (N, 48, 48) -> probabilities (N, 7)."""

    def __init__(self, classifier: Classifier):
        super().__init__()
        self.classifier = classifier.eval()

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.classifier(faces.unsqueeze(1).float())  # (N, 1, 48, 48) raw pixels


def export(ckpt: Checkpoint, fmt: str, out: str | Path) -> Path:
    """Write the Deployable of a checkpoint as `fmt` (onnx or torchscript) to `out`."""
    module, out = Deployable(ckpt.classifier(ckpt.model.cpu())).eval(), Path(out)
    example = torch.zeros(2, 48, 48, dtype=torch.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    quiet = logging.getLogger("torch.onnx")
    level, quiet.level = quiet.level, logging.ERROR  # not one line per torchvision op it skips
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation, the exporter's own notices
            if fmt == "onnx":
                batch = torch.export.Dim("batch", min=1)
                torch.onnx.export(module, (example,), str(out), input_names=["faces"],
                                  output_names=["probabilities"], dynamic_shapes={"faces": {0: batch}},
                                  dynamo=True, external_data=False, verbose=False)  # one self-contained file
            else:
                torch.jit.save(torch.jit.trace(module, example), str(out))
    finally:
        quiet.setLevel(level)
    return out


def load_exported(path: str | Path, trust_torchscript: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """A function uint8 faces (N, 48, 48) -> probabilities (N, 7) of an exported file; a
    CheckpointError in one line for a file that is not one.

    TorchScript is a program: torch.jit.load runs what the file holds, which is why torch's own
    weights_only loading refuses it. Only `trust_torchscript` (the user's say-so, or a file this
    process has just written) loads one; ONNX holds no code and needs no such consent."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such exported model")
    if exported_format(path) == "torchscript":
        if not trust_torchscript:
            raise CheckpointError(f"{path}: a TorchScript file, which can run code when loaded: pass "
                                  "--trust-torchscript if you trust where it came from (ONNX needs no such trust)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is what this file is
                module = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as e:
            raise CheckpointError(f"{path}: a TorchScript file that cannot be read ({_first_line(e)})") from None
        return lambda faces: module(torch.as_tensor(faces)).detach().numpy()
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
        raise CheckpointError(f"{path}: not an ONNX model that onnxruntime can load ({_first_line(e)})") from None
    inputs = [i.name for i in session.get_inputs()]
    if inputs != ["faces"]:
        raise CheckpointError(f"{path}: an ONNX model, but not one fer exported (inputs {inputs}, expected ['faces'])")
    return lambda faces: session.run(None, {"faces": np.ascontiguousarray(faces, dtype=np.uint8)})[0]


def exported_format(path: str | Path) -> str | None:
    """'onnx', 'torchscript', or None for anything else (a fer checkpoint among them)."""
    path = Path(path)
    if path.suffix == ".onnx":
        return "onnx"
    return "torchscript" if is_torchscript(path) else None


def write_checked(ckpt: Checkpoint, fmt: str, out: Path,
                  check: Callable[[Callable], bool]) -> bool:
    """Export to a temporary file beside `out`, and rename it to `out` only once `check(run)` says
    the file is good: a failed check, an error or Ctrl-C leaves whatever `out` held untouched."""
    return replace_with(out, lambda tmp: export(ckpt, fmt, tmp),
                        lambda tmp: check(load_exported(tmp, trust_torchscript=True)),  # the file just written
                        suffix=FORMATS[fmt])


def parity(reference: np.ndarray, exported: np.ndarray) -> float:
    """Max abs difference of two (N, 7) probability arrays; NaN when either holds a NaN (which
    no tolerance passes: compare with `passes`)."""
    return float(np.abs(reference.astype(np.float64) - exported.astype(np.float64)).max())


def passes(diff: float) -> bool:
    return bool(diff <= PARITY_TOLERANCE)  # False for NaN, unlike `not diff > tolerance`


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else e.__class__.__name__


def parity_faces(source: str | None) -> tuple[np.ndarray, str]:
    """The first PARITY_IMAGES faces of the checkpoint's data when it is here, else synthetic ones;
    and what they are, in words."""
    from fer.data import SyntheticSpec, load_data, make_synthetic

    if source and source != "synthetic" and Path(source).exists():
        return load_data(source).images[:PARITY_IMAGES], f"faces of {source}"
    return make_synthetic(SyntheticSpec(n_per_class=PARITY_IMAGES // 7 + 1)).images[:PARITY_IMAGES], "synthetic faces"


def parity_check(ckpt: Checkpoint, say: Callable[[str], None]) -> Callable[[Callable], bool]:
    """The check `write_checked` runs on an exported file: its probabilities on PARITY_IMAGES faces
    against PyTorch's in fp32, as the graph computes, within PARITY_TOLERANCE (NaN never is). A
    checkpoint that scores in bf16 (train.precision) is told apart: how far its own scores are."""
    from fer.evaluate import predict_checkpoint, uses_bf16

    images, source = parity_faces(ckpt.source)
    reference = predict_checkpoint(ckpt, images, precision="fp32")

    def check(run) -> bool:
        exported = run(images)
        diff = parity(reference, exported)
        say(f"parity with PyTorch on {len(images)} {source}: max abs difference {diff:.1e} "
            f"(tolerance {PARITY_TOLERANCE:.0e})")
        if uses_bf16("cpu", ckpt.precision):
            bf16 = predict_checkpoint(ckpt, images)
            changed = int((bf16.argmax(1) != exported.argmax(1)).sum())
            say(f"the checkpoint scores in bf16, the file in fp32: max abs difference "
                f"{parity(bf16, exported):.1e}, top class changed on {changed} of {len(images)} faces")
        return passes(diff)
    return check
