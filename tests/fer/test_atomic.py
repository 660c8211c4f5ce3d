"""fer.atomic: a file is whole or absent, and a measurement cache heals and takes turns."""
import json

import pytest

from fer.atomic import JsonEntries, replace_with, write_atomic, write_text


def test_a_failed_check_or_an_error_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "sweep.json"
    write_text(target, "old")
    assert not replace_with(target, lambda tmp: tmp.write_text("new"), check=lambda tmp: False)
    with pytest.raises(RuntimeError):
        write_atomic(target, lambda f: (f.write(b"half"), (_ for _ in ()).throw(RuntimeError("disk full"))))
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["sweep.json"]
    assert replace_with(target, lambda tmp: tmp.write_text("new"), check=lambda tmp: tmp.read_text() == "new")
    assert target.read_text() == "new"


def test_a_cache_file_that_cannot_be_read_is_said_once_and_rebuilt(tmp_path, capsys):
    cache = JsonEntries(tmp_path / "speed.json")
    cache.put("a", {"rate": 1.0})
    (tmp_path / "speed.json").write_text("{not json")
    assert cache.read() == {} and "is unreadable" in capsys.readouterr().err
    cache.put("b", 2)
    assert json.loads((tmp_path / "speed.json").read_text()) == {"b": 2}


def test_turns_are_per_key(tmp_path):
    import threading

    cache, order = JsonEntries(tmp_path / "speed.json"), []

    def take(key: str) -> None:
        with cache.one_at_a_time(key):
            order.append(key)

    with cache.one_at_a_time("shape A"):
        other = threading.Thread(target=take, args=("shape B",))
        other.start()
        other.join(timeout=10)
        assert order == ["shape B"]  # another key does not wait for this one
        waiting = threading.Thread(target=take, args=("shape A",))
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive() and order == ["shape B"]  # the same key waits its turn
    waiting.join(timeout=10)
    assert order == ["shape B", "shape A"]


def test_folder_to_write_refuses_a_file_and_takes_a_folder_or_a_new_path(tmp_path):
    from fer.atomic import folder_to_write
    from fer.errors import FerError

    (tmp_path / "f").write_text("x")
    with pytest.raises(FerError, match=r"^--dir .*/f: a file, not a folder: name a folder to write into$"):
        folder_to_write(tmp_path / "f", "--dir")
    assert folder_to_write(str(tmp_path)) == tmp_path and folder_to_write(tmp_path / "new") == tmp_path / "new"
