"""search.ship.ensemble: a sweep's candidates (snapshots included), the member table, and the
held-out check of the ensemble against the best single checkpoint."""

import numpy as np

import search.ship.ensemble


def test_snapshots_are_the_trials_other_kept_checkpoints_in_epoch_order(tmp_path):
    trial = tmp_path / "trial_a"
    for name in ("checkpoint_000002", "checkpoint_000000", "checkpoint_000001", "checkpoint_000003"):
        (trial / name).mkdir(parents=True)
        (trial / name / "checkpoint.pt").write_bytes(b"")
    (trial / "checkpoint_000003" / "checkpoint.pt").unlink()  # being written, or cut short: not offered
    (trial / "checkpoint_tmp").mkdir()
    others = search.ship.ensemble.other_checkpoints(str(trial / "checkpoint_000001" / "checkpoint.pt"))
    assert [p.parent.name for p in others] == ["checkpoint_000000", "checkpoint_000002"]


def test_the_member_table_is_as_wide_as_its_longest_name(tmp_path, monkeypatch, capsys):
    """Snapshot members (`cnn/<trial>/checkpoint_NNNNNN`) are longer than trial names: the weight
    and score columns still line up. The held-out line says when the ensemble did not pay."""
    from search.cli import main

    names = ["cnn/5a39d8d2", "cnn/5a39d8d2/checkpoint_000011"]
    done = {"metric": "val_acc", "members": [{"member": n, "weight": 0.5, "val_acc": 0.6} for n in names],
            "candidates": 9, "split": "PublicTest", "scores": {}, "best_member": names[0], "out": str(tmp_path),
            "held_out": {"ensemble": 0.61, "best_single": 0.62, "ahead": 3, "halves": 20}}
    monkeypatch.setattr(search.ship.ensemble, "build_ensemble", lambda *a: done)
    assert main(["ensemble", str(tmp_path), "--snapshots", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "weight" in line]
    assert len(rows) == 2 and len({row.index("weight") for row in rows}) == 1
    assert rows[1].startswith(f"  {names[1]}  weight 0.50")
    assert ("chosen on one half of PublicTest, scored on the other (20 halves): val_acc ensemble 0.6100, best "
            "single 0.6200; the ensemble ahead on 3 of 20: where not chosen, one checkpoint did at least as "
            "well") in out


def _members_wrong_on_one_third(n: int = 300) -> tuple[np.ndarray, list[np.ndarray]]:
    """Three members, each confidently wrong on its own third of the faces: any two outvote the third."""
    labels = np.arange(n) % 7
    members = []
    for third in range(3):
        p = np.full((n, 7), 0.1 / 6)
        wrong = np.arange(n) % 3 == third
        p[np.arange(n), np.where(wrong, (labels + 1) % 7, labels)] = 0.9
        members.append(p)
    return labels, members


def test_held_out_scores_the_choice_where_it_was_not_made():
    from search.ship.ensemble import held_out

    labels, members = _members_wrong_on_one_third()
    h = held_out(labels, members, size=5)
    assert h.halves == 20 and h.ensemble == 1.0 and h.ahead == 20  # the three together are right everywhere
    assert 0.6 < h.best_single < 0.75  # one member alone: two thirds
    same = held_out(labels, [members[0]] * 3, size=5)  # nothing to add: never ahead
    assert same.ensemble == same.best_single and same.ahead == 0
