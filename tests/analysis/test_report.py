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

FIGURES = ["confusion_matrix.png", "saliency.png", "filters.png", "activations.png", "curves.png"]


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


def test_cli_errors(checkpoint, tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "no such checkpoint or experiment folder" in capsys.readouterr().err
    assert main(["report", str(checkpoint), "--images", "99999", "--out", str(tmp_path)]) == 2
    assert "--images: index 99999 is outside" in capsys.readouterr().err
    assert main(["report", str(checkpoint), "--layer", "nope", "--out", str(tmp_path)]) == 2
    assert "--layer nope: no such layer" in capsys.readouterr().err
    assert main(["report", str(checkpoint), "--filters-layer", "nope", "--out", str(tmp_path)]) == 2
    assert "--filters-layer nope: no such layer" in capsys.readouterr().err


def test_report_of_a_dnn_skips_conv_only_figures(tmp_path):
    run = load_run(None, ["model.name=dnn", "model.widths=[32]", "train.epochs=1"])
    train_run(run, tmp_path / "run")
    metrics = make_report(str(tmp_path / "run"), out=tmp_path / "report", images=[0, 1])
    assert "gradcam" not in metrics["explanations"]["model"]["randomisation"]  # no conv block to look at
    assert not (tmp_path / "report" / "filters.png").exists()
    assert metrics["activations"]["model"]["layer"] == "layers.act1"
