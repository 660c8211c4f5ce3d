"""benchmarks/space_suggest.py: what one suggestion of a space costs the driver."""
import re

from benchmarks.space_suggest import main


def test_it_times_the_suggestions_of_a_budgeted_space_and_reads_peak_memory(capsys):
    assert main(["--space", "configs/dnn.yaml", "--n", "2"]) == 0
    line = capsys.readouterr().out.strip()
    found = re.fullmatch(r"configs/dnn\.yaml: 2 suggestions, ([\d.]+) ms each; peak memory (\d+) MB after loading "
                         r"the space, (\d+) MB after the suggestions", line)
    assert found, line
    assert float(found[1]) > 0 and int(found[3]) >= int(found[2]) > 0  # a peak never falls
