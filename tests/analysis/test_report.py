"""The whole report from a checkpoint trained on the synthetic faces."""
import json
import re
import shutil
import subprocess

import pytest

from analysis.cli import main
from analysis.report import make_report
from fer.config import load_run
from fer.run import train_run

FIGURES = ["confusion_matrix.png", "reliability.png", "saliency.png", "filters.png", "activations.png", "curves.png"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    run = load_run(None, ["model.name=cnn", "model.channels=[8,16]", "model.kernel_sizes=[3]", "model.head=gap",
                          "model.head_hidden=[]", "model.pool=max", "train.epochs=2", "train.batch_size=64"])
    train_run(run, out)
    return out / "checkpoint.pt"


@pytest.fixture(scope="module")
def report(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    metrics = make_report(str(checkpoint), out=out, images=[3, 5, 8])
    return out, metrics


def test_report_writes_every_figure_and_metrics(report):
    out, metrics = report
    for name in FIGURES + ["metrics.json", "report.html"]:
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "metrics.json").read_text())
    model = saved["models"]["model"]
    assert model["split"] == "PublicTest" and model["n"] == 630
    assert len(model["confusion_matrix"]) == 7 and sum(map(sum, model["confusion_matrix"])) == 630
    assert set(model["per_class"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert model["temperature"] != 1.0 and 0 <= model["ece"] <= 1 and 0 <= model["ece_at_temperature_1"] <= 1
    expl = saved["explanations"]["model"]
    assert expl["images"] == [3, 5, 8]
    assert set(expl["randomisation"]) == {"gradient", "smoothgrad", "integrated_gradients", "gradcam"}
    assert 0 < expl["mask_share"]["gradient"]["area_share"] < 1  # synthetic faces carry their masks
    assert saved["activations"]["model"]["layer"] == "features.block1.act"
    assert saved["filters"]["model"] == {"layer": "features.block2.conv1", "kernels": 8, "patterns": 16}


def test_html_is_self_contained(report):
    page = (report[0] / "report.html").read_text()
    sources = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert len(sources) == len(FIGURES) and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page and "<script" not in page


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    page = (report[0] / "report.html").read_text()
    probe = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
             "document.body.insertAdjacentHTML('beforeend','<pre id=probe>images='+i.length+' loaded='+"
             "i.filter(x=>x.complete&&x.naturalWidth>0).length+'</pre>')});</script>")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    done = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
                           probed.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r"images=(\d+) loaded=(\d+)", done.stdout)
    assert found, done.stderr[-2000:]
    assert int(found.group(1)) == len(FIGURES) and found.group(1) == found.group(2)


@pytest.mark.parametrize("args, message", [
    (["{tmp}/nope"], "no such checkpoint or experiment folder"),
    (["{ckpt}", "--images", "99999"], "--images: index 99999 is outside"),
    (["{ckpt}", "--images", "3,x"], "argument --images: expected comma-separated integers"),
    (["{ckpt}", "--layer", "nope"], "--layer nope: no such layer"),
    (["{ckpt}", "--filters-layer", "nope"], "--filters-layer nope: no such layer"),
    (["{ckpt}", "--filters-layer", "head"], "--filters-layer head: its output is not conv feature maps"),
    (["{ckpt}", "--split", "holdout"], "unknown split 'holdout'"),
    (["{truncated}"], "cannot be read, truncated or corrupt"),
    (["{tmp}/config.yaml"], "not a fer checkpoint (not a PyTorch file)"),
])
def test_bad_arguments_exit_2_and_write_nothing(checkpoint, tmp_path, capsys, args, message):
    data = (checkpoint / "checkpoint.pt").read_bytes() if checkpoint.is_dir() else checkpoint.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "config.yaml").write_text("model: {name: seed_cnn}\n")
    fill = {"tmp": tmp_path, "ckpt": checkpoint, "truncated": tmp_path / "truncated.pt"}
    out = tmp_path / "out"
    try:
        code = main(["report", *[a.format(**fill) for a in args], "--out", str(out)])
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_an_out_that_is_a_file_or_a_folder_of_other_files_is_refused_untouched(checkpoint, report, tmp_path,
                                                                                capsys):
    """Nothing the user made is overwritten: --out never replaces a file, nor writes figures into
    a folder of the user's; an earlier report's folder is the one kind of folder it replaces."""
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "curves.png").write_text("mine")
    for out, message in ((notes, "a file, not a folder"), (mine, "holds files but no report (report.html)")):
        assert main(["report", str(checkpoint), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--out {out}: {message}" in err and len(err.strip().splitlines()) == 1
    assert notes.read_text() == "mine" and [f.name for f in mine.iterdir()] == ["curves.png"]
    assert (mine / "curves.png").read_text() == "mine"
    from analysis.report import _check_out
    _check_out(report[0])  # an earlier report's folder: accepted


def test_report_of_a_dnn_skips_conv_only_figures(tmp_path):
    run = load_run(None, ["model.name=dnn", "model.widths=[32]", "train.epochs=1"])
    train_run(run, tmp_path / "run")
    metrics = make_report(str(tmp_path / "run"), out=tmp_path / "report", images=[0, 1])
    assert "gradcam" not in metrics["explanations"]["model"]["randomisation"]  # no conv block to look at
    assert not (tmp_path / "report" / "filters.png").exists()
    assert metrics["activations"]["model"]["layer"] == "layers.act1"


def test_report_of_an_ensemble_lists_its_members_and_leaves_grad_cam_out(checkpoint, tmp_path):
    from fer.checkpoint import Checkpoint
    from fer.ship.ensemble import ensemble_checkpoint

    member = Checkpoint.load(checkpoint)
    made = ensemble_checkpoint([(member, "cnn/a"), (member, "cnn/b")], [0, 1, 1], dict(member.data),
                               {"val_acc": 0.0, "val_macro_f1": 0.0})
    made.save(tmp_path / "ens" / "checkpoint.pt")
    metrics = make_report(str(tmp_path / "ens"), out=tmp_path / "report", images=[0, 1])
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Ensemble members of model" in page and "cnn/a" in page and "0.667" in page
    assert "gradcam" not in metrics["explanations"]["model"]["randomisation"]
    assert "gradient" in metrics["explanations"]["model"]["randomisation"]  # the ensemble's own gradient
