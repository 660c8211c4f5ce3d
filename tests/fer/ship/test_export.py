"""`fer export`: the model with its preprocessing, TTA and prior correction in one file, as
ONNX (run by onnxruntime) or TorchScript, equal to PyTorch's probabilities; `fer predict`
reads it; a corrupt or foreign file is one line."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fer.ship.export
from fer.checkpoint import Checkpoint
from fer.cli import main
from fer.evaluate import predict_checkpoint
from fer.ship.export import export, load_exported, parity

RUNS = {  # a CNN with ten-crop TTA and a prior correction, and an MLP with shift TTA, both fp32
    "cnn": ["model.name=cnn", "model.channels=[8,16]", "model.kernel_sizes=[3,3]", "model.head=gap",
            "model.head_hidden=[]", "train.crop_size=44", "train.tta=tencrop", "train.logit_adjust=0.5",
            "train.precision=fp32"],
    "dnn": ["model.name=seed_dnn", "train.tta=shifts", "train.precision=fp32"],
    "bf16": ["model.name=cnn", "model.channels=[8,16]", "model.kernel_sizes=[3,3]", "model.head=gap",
             "model.head_hidden=[]", "train.precision=bf16"],  # as a CPU with native bf16 may choose
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = {}
    for family, overrides in RUNS.items():
        out[family] = tmp_path_factory.mktemp(family)
        assert main(["train", "--epochs", "1", "--out", str(out[family]), "train.batch_size=64", *overrides]) == 0
    offset = Checkpoint.load(out["bf16"])  # one epoch leaves every p near 1/7, where bf16 and fp32 can agree
    offset.state_dict["head.out.bias"].add_(100.0)  # to 1e-4; a common offset keeps fp32's probabilities,
    offset.save(offset.path)  # and bf16 rounds logits near 100 to steps of 0.5, which moves them
    return out


@pytest.mark.parametrize("fmt", ["torchscript", pytest.param("onnx", marks=pytest.mark.slow)])
@pytest.mark.parametrize("family", ["cnn", "dnn"])
def test_the_exported_file_gives_pytorchs_probabilities(trained, synthetic, tmp_path, family, fmt):
    ckpt = Checkpoint.load(trained[family])
    path = export(ckpt, fmt, tmp_path / f"model.{fmt}")
    faces = synthetic.images[:64]
    expected = predict_checkpoint(ckpt, faces)
    got = load_exported(path, trust_torchscript=True)(faces)
    assert got.shape == (64, 7) and got.dtype == np.float32
    assert parity(expected, got) < 1e-5
    assert parity(expected[:1], load_exported(path, trust_torchscript=True)(faces[:1])) < 1e-5  # any batch size


@pytest.mark.slow
def test_export_cli_checks_parity_and_predict_reads_the_file(trained, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main(["export", str(trained["cnn"]), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (onnx" in printed and "parity with PyTorch on 64 synthetic faces" in printed
    images = []
    for i in range(2):
        images.append(str(tmp_path / f"face{i}.png"))
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (48, 48), dtype=np.uint8)).save(images[-1])
    assert main(["predict", str(out), *images]) == 0
    from_file = capsys.readouterr().out
    assert main(["predict", str(trained["cnn"]), *images]) == 0
    from_checkpoint = capsys.readouterr().out
    assert from_file == from_checkpoint and len(from_file.splitlines()) == 2


def test_a_checkpoint_that_scores_in_bf16_exports_in_fp32_and_says_how_far_apart(trained, tmp_path, capsys):
    """The graph computes in fp32; parity is checked against PyTorch in fp32, and the distance to
    the checkpoint's own bf16 scores is printed, not failed on."""
    out = tmp_path / "model.torchscript.pt"
    assert main(["export", str(trained["bf16"]), "--format", "torchscript", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "the checkpoint scores in bf16, the file in fp32: max abs difference" in printed
    ckpt = Checkpoint.load(trained["bf16"])
    faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    from_file = load_exported(out, trust_torchscript=True)(faces)
    assert parity(predict_checkpoint(ckpt, faces, precision="fp32"), from_file) < 1e-5
    assert parity(predict_checkpoint(ckpt, faces), from_file) > fer.ship.export.PARITY_TOLERANCE


def test_an_export_over_the_tolerance_is_removed_and_exits_1(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fer.ship.export, "PARITY_TOLERANCE", -1.0)
    out = tmp_path / "model.torchscript.pt"
    assert main(["export", str(trained["dnn"]), "--format", "torchscript", "--out", str(out)]) == 1
    assert not out.exists() and "failed the parity check" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_a_nan_output_fails_parity_and_leaves_the_old_file_intact(trained, tmp_path, monkeypatch, capsys):
    out = tmp_path / "model.torchscript.pt"
    out.write_bytes(b"the file a deployment runs today")
    real = fer.ship.export.load_exported
    monkeypatch.setattr(fer.ship.export, "load_exported", lambda p, **kw: lambda f: real(p, **kw)(f) * np.nan)
    assert main(["export", str(trained["dnn"]), "--format", "torchscript", "--out", str(out)]) == 1
    assert "max abs difference nan" in capsys.readouterr().out
    assert out.read_bytes() == b"the file a deployment runs today" and list(tmp_path.iterdir()) == [out]


def test_an_export_interrupted_leaves_the_old_file_intact(trained, tmp_path, monkeypatch):
    out = tmp_path / "model.torchscript.pt"
    out.write_bytes(b"old")

    def interrupted(*args):
        Path(args[2]).write_bytes(b"half a file")
        raise KeyboardInterrupt
    monkeypatch.setattr(fer.ship.export, "export", interrupted)
    assert main(["export", str(trained["dnn"]), "--format", "torchscript", "--out", str(out)]) == 130
    assert out.read_bytes() == b"old" and list(tmp_path.iterdir()) == [out]


def test_export_refuses_to_overwrite_the_checkpoint_it_exports(trained, capsys):
    ckpt = trained["dnn"] / "checkpoint.pt"
    before = ckpt.read_bytes()
    assert main(["export", str(trained["dnn"]), "--format", "onnx", "--out", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert "that is the checkpoint being exported" in err and len(err.splitlines()) == 1
    assert ckpt.read_bytes() == before


def test_torchscript_runs_only_with_the_flag_even_disguised_as_a_checkpoint(trained, tmp_path, capsys):
    disguised = export(Checkpoint.load(trained["dnn"]), "torchscript", tmp_path / "checkpoint.pt")
    image = tmp_path / "face.png"
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(image)
    assert main(["predict", str(disguised), str(image)]) == 2
    err = capsys.readouterr().err
    assert "a TorchScript file, which can run code" in err and "--trust-torchscript" in err
    assert main(["evaluate", str(disguised)]) == 2
    assert "a TorchScript file, not a fer checkpoint" in capsys.readouterr().err
    assert main(["predict", "--trust-torchscript", str(disguised), str(image)]) == 0
    assert capsys.readouterr().out.startswith(str(image))


def _foreign_onnx(path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "other",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(path))


@pytest.mark.parametrize("name, make, says", [
    ("junk.onnx", lambda p: p.write_text("not a model"), "not an ONNX model that onnxruntime can load"),
    ("other.onnx", _foreign_onnx, "an ONNX model, but not one fer exported"),
    ("cut.torchscript.pt", None, "cannot be read"),
])
def test_a_corrupt_or_foreign_exported_file_is_one_line(trained, tmp_path, capsys, name, make, says):
    path = tmp_path / name
    if make is None:  # a TorchScript file cut short
        whole = export(Checkpoint.load(trained["dnn"]), "torchscript", tmp_path / "whole.torchscript.pt")
        path.write_bytes(whole.read_bytes()[:20000])
    else:
        make(path)
    image = tmp_path / "face.png"
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(image)
    assert main(["predict", "--trust-torchscript", str(path), str(image)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"fer: error: {path}") and says in err and "\n" not in err, err
