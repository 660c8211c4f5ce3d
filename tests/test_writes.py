"""Every file fer, search and analysis write is written whole, through fer.atomic (replace_with,
write_atomic, write_text): a line of theirs that writes a file any other way fails here, unless
it is listed below with the reason it may."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIRECT = re.compile(r"\.write_text\(|\.write_bytes\(|\bopen\([^)]*['\"][wax]b?\+?['\"]|os\.(replace|rename)\(|"
                    r"mkstemp\(|\.to_csv\(|savefig\(|torch\.(jit\.)?save\(|\bim\.save\(|np\.savez?\(|"
                    r"open_output_stream\(|json\.dump\(")
THROUGH_ATOMIC = re.compile(r"(?<![.\w])(replace_with|write_atomic|write_text)\(")  # fer.atomic's, not Path's
ALLOWED = {  # (file, what the line does): why it may write directly
    ("fer/atomic.py", "open(tmp, \"wb\")"): "the helper itself writes its temporary file",
    ("fer/atomic.py", "os.replace(tmp, path)"): "the helper's rename",
    ("fer/atomic.py", "mkstemp("): "the helper's temporary file",
    ("search/storage.py", "open(path, \"wb\")"): "the storage reserve: space taken on purpose, removed after the run",
    ("search/storage.py", "mkdtemp("): "a write probe, removed at once",
    ("fer/ship/export.py", "torch.jit.save("): "export() writes the temporary path replace_with hands it",
    ("search/sweep.py", "open_output_stream("): "sweep.json on object storage: an object appears whole or not at all",
    ("search/study.py", "open_output_stream("): "optuna.db on object storage: an object appears whole or not at all",
}


def direct_writes() -> list[tuple[str, int, str]]:
    found = []
    for package in ("fer", "search", "analysis"):
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            for n, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#")[0]
                if DIRECT.search(code) and not THROUGH_ATOMIC.search(code) \
                        and not any(rel == f and what in code for f, what in ALLOWED):
                    found.append((rel, n, line.strip()))
    return found


def test_every_write_is_whole():
    assert direct_writes() == []


def test_every_allowance_is_still_needed():
    for (file, what), why in ALLOWED.items():
        assert what in (REPO / file).read_text(), f"{file}: no longer {what!r} ({why}): drop it from ALLOWED"


def test_the_scan_finds_a_direct_write(tmp_path, monkeypatch):
    """The scan itself: a plain write_text in a module of the packages is reported."""
    module = REPO / "analysis" / "_scan_probe.py"
    module.write_text('from pathlib import Path\nPath("x").write_text("y")\n')
    try:
        assert ("analysis/_scan_probe.py", 2, 'Path("x").write_text("y")') in direct_writes()
    finally:
        module.unlink()
