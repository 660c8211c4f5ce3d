"""int8 ONNX for CPU deployment: static quantization with onnxruntime.quantization (QDQ format,
per-channel int8 weights, activations calibrated on training faces the checkpoint saw), shipped
only if it passes a gate on the checkpoint's validation split.

Careless int8 can destroy a CNN (dynamic quantization has been seen to bring one to chance), so
the file is compared with the fp32 export it came from on the validation faces: their top-1
classes must agree on at least AGREEMENT_MIN of them and the accuracy may drop at most
ACCURACY_DROP_MAX. Only the network's Conv, MatMul and Gemm nodes are quantized, all but its
first and last layers: those, the graph's preprocessing, softmax and view averaging stay in
fp32, where they are cheap and exact.
Activation ranges are calibrated by percentile (99.999%), not min-max: on FER2013's best CNN
min-max ranges kept 98.7% of the fp32 top-1 classes, percentile ranges 99.1%.
"""
from __future__ import annotations

import contextlib
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fer.atomic import replace_with

AGREEMENT_MIN = 0.99
ACCURACY_DROP_MAX = 0.005  # 0.5 points
CALIBRATION_FACES = 2048
LATENCY_RUNS = 20


class Gate(NamedTuple):
    n: int
    agreement: float  # share of faces whose top class is the same in both files
    accuracy_fp32: float
    accuracy_int8: float

    @property
    def passed(self) -> bool:
        return self.agreement >= AGREEMENT_MIN and self.accuracy_fp32 - self.accuracy_int8 <= ACCURACY_DROP_MAX

    def line(self) -> str:
        return (f"int8 gate on {self.n} validation faces: top-1 agreement with fp32 {self.agreement:.2%} "
                f"(at least {AGREEMENT_MIN:.0%}), accuracy {self.accuracy_int8:.4f} against {self.accuracy_fp32:.4f} "
                f"(at most {100 * ACCURACY_DROP_MAX:.1f} points lower): {'passed' if self.passed else 'failed'}")


class FileCost(NamedTuple):
    mib: float
    ms_per_face: float  # median at batch 1
    faces_per_s: float  # at batch 256


def quantize(fp32: Path, out: Path, faces: np.ndarray) -> Path:
    """Statically quantize the fp32 ONNX file at `fp32` into `out`, calibrated on `faces` (N, 48, 48)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(np.array_split(faces, max(1, len(faces) // 64)))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"faces": np.ascontiguousarray(batch, dtype=np.uint8)}

    prepared = out.with_name(out.stem + ".prep.onnx")
    quant_pre_process(str(fp32), str(prepared))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its calibrators print their progress
            quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                            op_types_to_quantize=["Conv", "MatMul", "Gemm"], nodes_to_exclude=kept_in_fp32(prepared),
                            calibrate_method=CalibrationMethod.Percentile)  # outliers clipped: BENCHMARKS.md
    finally:
        prepared.unlink(missing_ok=True)
    return out


def kept_in_fp32(path: Path) -> list[str]:
    """The first and last layers of every test-time view's network, kept in fp32 as deployments
    usually keep them: the convs that read the one grayscale channel, and the Gemm or MatMul nodes
    that produce the 7 class logits. Their rounding lands straight on the input or the logits, and
    they are a sliver of the compute (BENCHMARKS.md, "int8 export")."""
    import onnx

    from fer.data import CLASSES

    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    out = []
    for node in graph.node:
        if node.op_type not in ("Gemm", "MatMul", "Conv") or len(node.input) < 2 or node.input[1] not in shapes:
            continue
        dims = shapes[node.input[1]]
        if node.op_type == "Conv":  # (out, in, k, k): the first conv reads the one grayscale channel
            if dims[1] == 1:
                out.append(node.name)
            continue
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        if (dims[0] if node.op_type == "Gemm" and trans_b else dims[-1]) == len(CLASSES):
            out.append(node.name)
    return out


def gate(fp32: Callable, int8: Callable, images: np.ndarray, labels: np.ndarray) -> Gate:
    a, b = fp32(images).argmax(1), int8(images).argmax(1)
    return Gate(len(labels), float((a == b).mean()), float((a == labels).mean()), float((b == labels).mean()))


def file_cost(path: Path, run: Callable) -> FileCost:
    """Size and onnxruntime speed of an exported file on this machine's CPU."""
    faces = np.random.default_rng(0).integers(0, 256, (256, 48, 48), dtype=np.uint8)
    for _ in range(3):
        run(faces[:1])
    times = []
    for i in range(LATENCY_RUNS):
        t = time.perf_counter()
        run(faces[i:i + 1])
        times.append(time.perf_counter() - t)
    run(faces)
    t = time.perf_counter()
    run(faces)
    batch_s = time.perf_counter() - t
    return FileCost(path.stat().st_size / 2**20, 1000 * statistics.median(times), len(faces) / batch_s)


def write_int8(fp32: Path, out: Path, calibration: np.ndarray, images: np.ndarray, labels: np.ndarray,
               load: Callable[[Path], Callable]) -> tuple[Gate, FileCost, FileCost]:
    """Quantize the checked fp32 file `fp32` into a temporary file beside `out`, gate it, and rename
    it to `out` only when the gate passes: else nothing is left behind."""
    found: dict = {}

    def gated(tmp: Path) -> bool:
        run_fp32, run_int8 = load(fp32), load(tmp)
        found["gate"] = gate(run_fp32, run_int8, images, labels)
        found["costs"] = file_cost(fp32, run_fp32), file_cost(tmp, run_int8)
        return found["gate"].passed

    replace_with(out, lambda tmp: quantize(fp32, tmp, calibration), gated, suffix=".onnx")
    return found["gate"], *found["costs"]


def checkpoint_faces(ckpt):
    """(calibration faces, validation FaceSet) of a checkpoint: CALIBRATION_FACES of the training
    faces it saw, and the split it was validated on. Its data must be at hand."""
    from fer.data import load_data, split_for_training
    from fer.errors import FerError

    source = ckpt.source
    if not source or (source != "synthetic" and not Path(source).exists()):
        raise FerError(f"--int8: the checkpoint's data ({source or 'not recorded'}) is not here: its training "
                       "faces calibrate the int8 model and its validation split gates it")
    train, val, _ = split_for_training(load_data(source), ckpt.train_config)
    pick = np.random.default_rng(0).permutation(len(train))[:CALIBRATION_FACES]
    return train.images[np.sort(pick)], val
