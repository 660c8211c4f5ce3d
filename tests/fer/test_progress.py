"""fer.progress: a bar within the epoch on a terminal, plain lines elsewhere."""
import io

import fer.progress
from fer.progress import EpochBar


def test_a_log_gets_plain_lines_not_carriage_returns(monkeypatch):
    monkeypatch.setattr(fer.progress, "PLAIN_EVERY_S", 0.0)  # every update is due
    out = io.StringIO()
    bar = EpochBar(batch_size=64, stream=out, tty=False)
    for done in range(1, 11):
        bar(done, 10)
    bar(1, 10)  # the next epoch starts a new bar
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines and all(line.startswith(("epoch 1", "epoch 2")) for line in lines)
    assert any("640/640" in line for line in lines) and lines[-1].startswith("epoch 2")


def test_a_log_stays_quiet_within_the_interval():
    out = io.StringIO()
    bar = EpochBar(batch_size=64, stream=out, tty=False)  # 30 s between lines: a fast epoch prints none
    for done in range(1, 11):
        bar(done, 10)
    assert out.getvalue() == ""


def test_a_terminal_gets_a_redrawn_bar():
    out = io.StringIO()
    bar = EpochBar(batch_size=32, stream=out, tty=True)
    for done in range(1, 5):
        bar(done, 4)
    assert "\r" in out.getvalue() and "epoch 1" in out.getvalue()
