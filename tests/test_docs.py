"""The options of every CLI and their documentation agree: each option of `python -m fer`,
`search` and `analysis` appears in README.md or docs/, and each option a documented command
line or docs/cli.md names is one its command's --help lists."""
import argparse
import re
from pathlib import Path

import pytest

import analysis.cli
import fer.cli
import search.cli

REPO = Path(__file__).resolve().parents[1]
CLIS = {"fer": fer.cli._parser, "search": search.cli._parser, "analysis": analysis.cli._parser}


def options(prog: str) -> dict[str, set[str]]:
    """{subcommand: its --options} of one CLI."""
    sub = next(a for a in CLIS[prog]()._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {s for a in p._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
            for name, p in sub.choices.items()}


def documents() -> str:
    return "\n".join(p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])


@pytest.mark.parametrize("prog", sorted(CLIS))
def test_every_option_is_documented(prog):
    text = documents()
    missing = [f"{prog} {cmd} {o}" for cmd, opts in options(prog).items() for o in sorted(opts)
               if not re.search(re.escape(o) + r"(?![\w-])", text)]
    assert not missing, f"not in README.md or docs/: {missing}"


def test_every_documented_option_exists():
    """Options on `python -m PROG CMD ...` lines, and in docs/cli.md's sections `## PROG CMD`."""
    known = {prog: options(prog) for prog in CLIS}
    wrong = []
    for line in documents().splitlines():
        m = re.search(r"python -m (fer|search|analysis) (\w+)(.*)", line)
        if m and m.group(2) in known[m.group(1)]:
            wrong += [f"{m.group(1)} {m.group(2)} {o}" for o in re.findall(r"(?<![\w-])--[a-z][\w-]*", m.group(3))
                      if o not in known[m.group(1)][m.group(2)]]
    for prog, cmd, body in re.findall(r"^## (fer|search|analysis) (\w+)\n(.*?)(?=^## |\Z)",
                                      (REPO / "docs" / "cli.md").read_text(), re.S | re.M):
        wrong += [f"{prog} {cmd} {o}" for o in re.findall(r"^\| `(--[\w-]+)", body, re.M)
                  if o not in known[prog].get(cmd, set())]
    assert not wrong, f"documented, but not in --help: {wrong}"


def _all_docs() -> dict[str, str]:
    paths = [REPO / "README.md", REPO / "ARCHITECTURE.md", REPO / "configs" / "README.md",
             *sorted((REPO / "docs").glob("*.md"))]
    return {str(p.relative_to(REPO)): p.read_text() for p in paths}


def test_every_documented_config_block_loads():
    """A YAML block in the docs is a space file or a run config that its loader accepts as written."""
    import yaml

    from fer.config import resolve_run
    from search.space import SearchSpace

    checked = 0
    for name, text in _all_docs().items():
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
            doc = yaml.safe_load(block)
            if not isinstance(doc, dict) or not {"model", "train", "family", "sweeps"} & set(doc):
                continue  # a cluster file or a fragment of settings
            if "family" in doc:
                SearchSpace(doc, f"{name} block {i}")
            elif "distribution" in _kinds(doc):  # a fragment of a space file: its keys must exist in a CNN space
                SearchSpace({"family": "cnn", **doc}, f"{name} block {i}")
            else:
                resolve_run(doc, f"{name} block {i}")
            checked += 1
    assert checked, "no config block found in the docs"


def _kinds(doc: dict) -> set[str]:
    from search.space import DISTRIBUTIONS

    return {"distribution" for section in doc.values() if isinstance(section, dict) for v in section.values()
            if isinstance(v, dict) and set(v) & set(DISTRIBUTIONS)}


def test_every_documented_config_key_exists():
    """`train.KEY`, `settings.KEY` and `model.KEY` named in the docs are fields their loaders read."""
    from dataclasses import fields

    from fer.config import TrainConfig
    from fer.models.registry import family_config, family_names
    from search.settings import Settings

    known = {"train": {f.name for f in fields(TrainConfig)}, "settings": {f.name for f in fields(Settings)},
             "model": {"name"} | {f.name for fam in family_names() for f in fields(family_config(fam))}}
    wrong = [f"{name}: {section}.{key}" for name, text in _all_docs().items()
             for section, key in re.findall(r"`(train|settings|model)\.([a-z_]+)(?=[`= :,\]])", text)
             if key not in known[section] and key != "py"]  # `settings.py` is a file
    assert not wrong, f"documented, but no loader reads them: {wrong}"
