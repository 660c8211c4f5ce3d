"""The study storage keeps a URL's password in memory: pickled copies (Tune's searcher state,
tuner.pkl) hold the URL without it, and messages hide it."""
import pickle

import pytest

from search.study import mask_passwords, open_storage, without_password
from tests.search.conftest import PG_PASSWORD


def test_shown_hides_every_password_in_a_line():
    line = "--optuna-storage postgresql://u:p%40ss@h:5432/db --warm-start-from mysql+pymysql://a:b@c/d"
    assert mask_passwords(line) == "--optuna-storage postgresql://u:***@h:5432/db --warm-start-from mysql+pymysql://a:***@c/d"
    assert mask_passwords("sqlite:////tmp/x/optuna.db") == "sqlite:////tmp/x/optuna.db"
    assert without_password("postgresql://u:pw@h/db") == ("postgresql://u@h/db", "pw")


@pytest.mark.parametrize("url, shown, bare, password", [
    ("postgresql://u:pa/ss@h:5432/db", "postgresql://u:***@h:5432/db", "postgresql://u@h:5432/db", "pa/ss"),  # "/"
    ("postgresql://u:p%40s:s@h/db", "postgresql://u:***@h/db", "postgresql://u@h/db", "p@s:s"),  # "@", ":"
    ("postgresql://u@h/db?password=se/cr@t&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require",
     "postgresql://u@h/db?sslmode=require", "se/cr@t"),
])
def test_every_form_of_password_is_masked_and_stripped(url, shown, bare, password):
    line = f"python -m search run --optuna-storage {url} --name x"
    assert mask_passwords(line) == f"python -m search run --optuna-storage {shown} --name x"
    assert without_password(url) == (bare, password)


@pytest.mark.slow  # a PostgreSQL server
def test_a_pickled_storage_holds_no_password_and_a_restored_one_connects_as_documented(postgres_url, monkeypatch):
    """A resumed sweep's unpickled study storage takes its password from PGPASSWORD (or ~/.pgpass),
    as docs/cluster.md gives it, never from a file Tune wrote."""
    storage = open_storage(postgres_url)
    blob = pickle.dumps(storage)
    assert PG_PASSWORD.encode() not in blob
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")  # no ~/.pgpass either
    with pytest.raises(Exception, match="password"):
        pickle.loads(blob).get_all_studies()
    monkeypatch.setenv("PGPASSWORD", PG_PASSWORD)
    restored = pickle.loads(blob)  # as Tune restores a searcher, in a process given PGPASSWORD
    assert restored.get_all_studies() == storage.get_all_studies()
