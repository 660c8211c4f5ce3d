"""search.uri: experiment and sweep names are one folder inside the storage path, never a path."""
import pytest

from fer.errors import FerError
from search.uri import check_name, is_local, trial_folder, trial_id_of


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "x y", "/abs", None])
def test_a_name_that_would_leave_its_folder_is_refused_in_one_line(name):
    with pytest.raises(FerError, match=r"--name: .* is not a name: letters, digits"):
        check_name(name, "--name")


def test_names_and_trial_folders_round_trip():
    assert check_name("quickstart-2.v1_b", "--name") == "quickstart-2.v1_b"
    assert trial_id_of(trial_folder("4bf17bb6")) == "4bf17bb6"
    assert is_local("results/x") and is_local("/tmp/x") and not is_local("s3://bucket/x")
