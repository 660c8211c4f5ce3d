"""fer.remote: a storage URI read like a folder, objects fetched once into a cache keyed by
URI, size and modification time; checkpoints loaded from s3:// as from disk."""
import pytest

from fer.checkpoint import Checkpoint
from fer.errors import FerError
from fer.remote import RemotePath, is_database, is_local, local_file, location

pytestmark = pytest.mark.slow  # an S3-compatible server in a subprocess


@pytest.fixture(scope="module")
def bucket(s3_server):
    return s3_server.bucket("fer-remote")


def put(s3_server, uri: str, data: bytes) -> None:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=data)


@pytest.mark.parametrize("text, local, database", [
    ("results/exp", True, False), ("/abs/exp", True, False), ("s3://b/exp", False, False),
    ("gs://b/exp", False, False), ("postgresql://u@h/db", False, True), ("sqlite:///x.db", False, True),
    ("postgresql+psycopg://u@h/db", False, True), ("mysql+pymysql://u@h/db", False, True)])
def test_what_a_location_is(text, local, database):
    assert (is_local(text), is_database(text)) == (local, database)


def test_a_bucket_is_listed_and_read_like_a_folder(s3_server, bucket):
    put(s3_server, f"{bucket}/exp/a/sweep.json", b'{"family": "cnn"}')
    put(s3_server, f"{bucket}/exp/a/trial_1/result.json", b"{}\n")
    put(s3_server, f"{bucket}/exp/b/sweep.json", b"{}")
    root = location(f"{bucket}/exp")
    assert isinstance(root, RemotePath) and root.exists() and root.is_dir() and not root.is_file()
    assert sorted(str(p) for p in root.rglob("sweep.json")) == [f"{bucket}/exp/a/sweep.json",
                                                                f"{bucket}/exp/b/sweep.json"]
    assert [p.name for p in (root / "a").glob("*.json")] == ["sweep.json"]
    assert sorted(p.name for p in root.iterdir()) == ["a", "b"]
    assert (root / "a" / "sweep.json").read_text() == '{"family": "cnn"}'
    assert (root / "a" / "sweep.json").parent == root / "a" and (root / "a").name == "a"
    assert not (root / "nothing").exists() and (root / "nothing").rglob("*") == []


def test_an_object_is_fetched_once_and_again_when_it_changes(s3_server, bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    uri = f"{bucket}/objects/data.bin"
    put(s3_server, uri, b"first")
    copy = local_file(uri)
    assert copy.read_bytes() == b"first" and str(copy).startswith(str(tmp_path / "cache"))
    before = copy.stat().st_ino
    assert local_file(uri) == copy and copy.stat().st_ino == before  # no second transfer (a fetch is a new file)
    put(s3_server, uri, b"second, longer")
    again = local_file(uri)
    assert again != copy and again.read_bytes() == b"second, longer"
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # fetches are whole or absent


def test_what_cannot_be_read_is_one_line(s3_server, bucket):
    with pytest.raises(FerError, match=rf"{bucket}/objects/missing.bin: no such file"):
        local_file(f"{bucket}/objects/missing.bin")
    assert not location("s3://no-such-bucket/x").exists()


def test_a_checkpoint_loads_from_its_uri_file_or_folder(s3_server, bucket, tmp_path, monkeypatch):
    import torch

    from fer.checkpoint import preprocessing

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    spec = {"name": "dnn", "widths": [8], "dropout": 0.0}
    from fer.models import model_from_spec

    model = model_from_spec(spec)
    ckpt = Checkpoint.build(spec, model.state_dict(), preprocessing(0.5, 0.2, 48, [1 / 7] * 7), {"batch_size": 8})
    ckpt.save(tmp_path / "checkpoint.pt")
    put(s3_server, f"{bucket}/run/checkpoint.pt", (tmp_path / "checkpoint.pt").read_bytes())
    for uri in (f"{bucket}/run/checkpoint.pt", f"{bucket}/run"):
        held = Checkpoint.load(uri)
        assert held.family == "dnn" and held.path.is_file()
        x = torch.zeros(2, 1, 48, 48)
        assert torch.equal(held.model.eval()(x), model.eval()(x))
    with pytest.raises(FerError, match="no such file"):
        Checkpoint.load(f"{bucket}/nothing/checkpoint.pt")


def test_fer_ensemble_averages_runs_at_their_uris(s3_server, bucket, tmp_path, monkeypatch, capsys):
    import json

    from fer.cli import main

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    for seed in (1, 2):
        run = tmp_path / f"s{seed}"
        assert main(["train", "--epochs", "1", "--out", str(run), "--seed", str(seed), "model.name=seed_dnn"]) == 0
        put(s3_server, f"{bucket}/runs/s{seed}/checkpoint.pt", (run / "checkpoint.pt").read_bytes())
    capsys.readouterr()
    runs = [f"{bucket}/runs/s1", f"{bucket}/runs/s2/checkpoint.pt"]  # a run folder or its checkpoint
    assert main(["ensemble", *runs, "--out", str(tmp_path / "x2"), "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert [m["member"] for m in done["members"]] == runs  # named as given, not as the cache's copies
    assert Checkpoint.load(tmp_path / "x2").payload["model"]["name"] == "ensemble"
