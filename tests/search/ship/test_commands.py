"""search/ship/commands.py: where `refit`, `distill` and `ensemble` write, and that a checkpoint already
there (the user's earlier ensemble or refit) is refused before any work, unless --overwrite."""
import pytest

import search.ship.ensemble
from search.cli import main


@pytest.fixture
def never_built(monkeypatch):
    """build_ensemble replaced: the folders it was asked to write to (nothing is computed)."""
    asked = []
    done = {"metric": "val_acc", "members": [], "candidates": 0, "split": "PublicTest", "scores": {},
            "best_member": "", "out": "", "held_out": {"ensemble": 0.5, "best_single": 0.5, "ahead": 0, "halves": 20}}
    monkeypatch.setattr(search.ship.ensemble, "build_ensemble", lambda root, family, size, out, snap: asked.append(out)
                        or done)
    return asked


@pytest.mark.parametrize("given_out", [False, True])
def test_ensemble_refuses_a_folder_holding_a_checkpoint_unless_overwrite(tmp_path, never_built, capsys, given_out):
    out = tmp_path / ("mine" if given_out else "ensemble_all")
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"an earlier ensemble")
    argv = ["ensemble", str(tmp_path), *(["--out", str(out)] if given_out else [])]
    assert main(argv) == 2 and never_built == []
    assert capsys.readouterr().err.strip() == (f"search: error: {out}: holds a checkpoint "
                                                "(checkpoint.pt): give another --out, or --overwrite to replace it")
    assert (out / "checkpoint.pt").read_bytes() == b"an earlier ensemble"
    assert main([*argv, "--overwrite"]) == 0 and never_built == [out]


def test_an_empty_or_new_folder_is_written_without_overwrite(tmp_path, never_built):
    (tmp_path / "ensemble_cnn").mkdir()  # a folder without a checkpoint: nothing to lose
    assert main(["ensemble", str(tmp_path), "--family", "cnn"]) == 0
    assert main(["ensemble", str(tmp_path), "--out", str(tmp_path / "new")]) == 0
    assert never_built == [tmp_path / "ensemble_cnn", tmp_path / "new"]


def test_refit_refuses_before_reading_the_experiment(tmp_path, capsys):
    """The refusal comes before the trials are read (here there are none): a refit trains for
    long, so it must not find out at the end that it may not write."""
    held = tmp_path / "refit" / "cnn"
    held.mkdir(parents=True)
    (held / "checkpoint.pt").write_bytes(b"an earlier refit")
    assert main(["refit", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"search: error: {held}: holds a checkpoint "
                                                "(checkpoint.pt): give another --out, or --overwrite to replace it")
    assert main(["refit", str(tmp_path), "--overwrite"]) == 2  # now it goes on, and finds no trial
    assert "no search experiments inside" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["ensemble", "refit", "distill --weight 0"])
def test_an_out_that_is_a_file_is_refused_before_any_work(tmp_path, never_built, capsys, command):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert main([*command.split(), str(tmp_path), "--out", str(notes)]) == 2 and never_built == []
    assert capsys.readouterr().err.strip() == (f"search: error: --out {notes}: a file, not a folder: name a folder "
                                                "to write into")
    assert notes.read_text() == "mine"


def test_distill_refuses_before_any_work(tmp_path, capsys):
    """Without a teacher (at a weight above 0), or with a checkpoint already at its folder, distill
    says so before it reads the experiment; with both settled it goes on and finds no trial."""
    assert main(["distill", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == ("search: error: --teacher: required with --weight above 0 (e.g. the "
                                                "ensemble `search ensemble` wrote)")
    held = tmp_path / "distill" / "cnn"
    held.mkdir(parents=True)
    (held / "checkpoint.pt").write_bytes(b"an earlier distillation")
    assert main(["distill", str(tmp_path), "--weight", "0"]) == 2
    assert "holds a checkpoint (checkpoint.pt)" in capsys.readouterr().err
    assert main(["distill", str(tmp_path), "--weight", "0", "--overwrite"]) == 2
    assert "no search experiments inside" in capsys.readouterr().err
    with pytest.raises(SystemExit) as out_of_range:  # argparse's refusal, naming the option
        main(["distill", str(tmp_path), "--weight", "1.5"])
    assert out_of_range.value.code == 2 and "--weight: must be a number in [0, 1]" in capsys.readouterr().err
