"""ARCHITECTURE.md is the map of the code: every module it names exists, and every module of
fer/, search/ and analysis/ is named in it (package __init__ and __main__ files aside)."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("fer", "search", "analysis")


def named_modules() -> set[str]:
    """Modules ARCHITECTURE.md's package tables name, as paths ("fer/data/csv.py"). A row whose
    first cell is a subpackage (`data/`) names its modules in the second cell."""
    named, package = set(), None
    for line in (REPO / "ARCHITECTURE.md").read_text().splitlines():
        if head := re.match(r"\| `(\w+)/`: ", line):
            package = head.group(1)
            continue
        if not re.match(r"\| (\*\*)?`", line) or package is None:
            package = package if line.startswith("|") else None
            continue
        cells = line.split("|")[1:-1]
        if sub := re.fullmatch(r"\s*`(\w+)/`\s*", cells[0]):
            named |= {f"{package}/{sub.group(1)}/{m}" for m in re.findall(r"`(\w+\.py)`", cells[1])}
            named.add(f"{package}/{sub.group(1)}/")
        else:
            named |= {f"{package}/{m}" for m in re.findall(r"`(\w+\.py)`", cells[0])}
    return named


def test_every_module_architecture_names_exists():
    named = named_modules()
    assert len(named) > 40
    missing = sorted(n for n in named if not (REPO / n).exists())
    assert not missing, f"ARCHITECTURE.md names modules that do not exist: {missing}"


def test_every_module_is_named_in_architecture():
    named = named_modules()
    modules = {str(p.relative_to(REPO)) for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")}
    unnamed = sorted(m for m in modules if m not in named)
    assert not unnamed, f"modules ARCHITECTURE.md does not name: {unnamed}"
