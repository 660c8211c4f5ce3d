"""fer.fields: options generated from dataclass fields (names, types, choices, defaults and help
from one declaration) and one-line errors that name the field."""
import argparse
from dataclasses import dataclass
from typing import Literal

import pytest

from fer.command import positive_int
from fer.errors import ConfigError
from fer.fields import FieldError, add_options, given, make_config, option


@dataclass
class Demo:
    rounds: int | None = option("how many rounds", None, cli_type=positive_int)
    mode: Literal["fast", "slow"] = option("how", "fast")
    shout: bool = option("say it loud", False)
    hidden: float = 1.0  # no option: a file-only setting

    def __post_init__(self):
        if self.hidden < 0:
            raise FieldError("hidden", f"must be >= 0, got {self.hidden}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(exit_on_error=False)
    add_options(p, Demo)
    return p


def test_options_come_from_the_fields():
    p = _parser()
    flags = {s for a in p._actions for s in a.option_strings}
    assert {"--rounds", "--mode", "--shout", "--no-shout"} <= flags and "--hidden" not in flags
    assert given(p.parse_args([]), Demo) == {}  # not given: the file's value, then the default, applies
    assert given(p.parse_args(["--rounds", "3", "--mode", "slow", "--shout"]), Demo) == {
        "rounds": 3, "mode": "slow", "shout": True}
    assert "(default: fast)" in p.format_help()
    with pytest.raises(argparse.ArgumentError):
        p.parse_args(["--mode", "medium"])


def test_a_fields_check_is_named_by_its_key():
    with pytest.raises(ConfigError, match=r"^settings\.hidden: must be >= 0, got -1\.0$"):
        make_config(Demo, {"hidden": -1.0}, "settings")
    with pytest.raises(ConfigError, match=r"^settings\.mode: 'medium' is not one of 'fast', 'slow'$"):
        make_config(Demo, {"mode": "medium"}, "settings")
