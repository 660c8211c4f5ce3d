"""fer/config.py's reading of a YAML file: a broken one is one line naming the file, the line
and the column where the parser stopped, and what it expected."""
import pytest

from fer.config import load_yaml
from fer.errors import ConfigError


@pytest.mark.parametrize("text, message", [
    ("family: cnn\nsettings: {num_samples: 2\nmodel: {}\n",
     "line 3, column 6: invalid YAML: expected ',' or '}', but got ':' (while parsing a flow mapping from line 2)"),
    ("a: b: c\n", "line 1, column 5: invalid YAML: mapping values are not allowed here"),
    ("a:\n\t- 1\n", "line 2, column 1: invalid YAML: found character '\\t' that cannot start any token"),
])
def test_invalid_yaml_names_the_line_and_column_in_one_line(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_yaml(path)
    assert str(e.value) == f"{path}: {message}"


def test_a_missing_file_or_a_list_at_the_top_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such config file$"):
        load_yaml(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: expected a mapping at the top level$"):
        load_yaml(tmp_path / "list.yaml")
