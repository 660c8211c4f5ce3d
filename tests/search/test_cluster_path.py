"""The cluster user's path: a two-node Ray cluster whose worker node cannot see the driver's
folders (its own mount namespace, a tmpfs over the test's temporary folders: the data, the
results, the caches), results on an S3-compatible server, the study on PostgreSQL. docs/cluster.md
runs as written; every reading command then takes the s3:// experiment; --resume continues one."""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from search.results import best_trials, trial_histories, trials_table
from search.study import without_password
from tests.factories import tiny_sweep
from tests.search.conftest import CLUSTER_PATH_PORT, PG_PASSWORD, start_head, stop_cluster
from tests.search.test_resume_cluster import ENDED, _kill_once_two_trials_ended

REPO = Path(__file__).resolve().parents[2]
PORT = CLUSTER_PATH_PORT
LAUNCHER = ("ray up ", "ray attach ")  # the `ray up` step: machines this test does not have (its file: test_configs)
SHORTER = {  # the documented sweep in seconds (argparse keeps the last value)
    "python -m search run configs/": ["--num-samples", "2", "--max-epochs", "2", "--scheduler", "fifo"]}
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (shutil.which("ray") and shutil.which("unshare")), reason="needs ray and unshare")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3_server):
    """(environment for commands, the worker node's id). Head: 1 CPU, no GPU, the driver's node.
    Worker: 1 CPU and 1 logical GPU, so GPU trials all run there, blind to the driver's folders."""
    hidden = tmp_path_factory.getbasetemp()
    env = {**os.environ, **s3_server.env, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "token",
           "FER_CACHE_DIR": str(hidden / "fer-cache")}
    env.pop("RAY_ADDRESS", None)
    ray_start = ["ray", "start", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    worker = shlex.join(ray_start + ["--address", f"127.0.0.1:{PORT}", "--num-gpus", "1",
                                     "--resources", '{"private_node": 1}'])
    try:
        start_head(PORT, ray_start[2:] + ["--num-gpus", "0", "--include-dashboard", "false"], env)
        subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        f"mount -t tmpfs tmpfs {shlex.quote(str(hidden))} && exec {worker}"],
                       env=env, check=True, capture_output=True, timeout=120)
        yield env, _worker_node(env, hidden)
    finally:
        stop_cluster(PORT)


def _worker_node(env: dict, hidden: Path) -> str:
    """The worker node's id, asked of a task that runs there; it must not see the driver's folders."""
    probe = ("import os, ray; ray.init(address='auto', logging_level='ERROR')\n"
             "@ray.remote(resources={'private_node': 1}, num_cpus=0)\n"
             "def look(p): return ray.get_runtime_context().get_node_id(), os.listdir(p)\n"
             f"print(*ray.get(look.remote({str(hidden)!r})))")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    node, seen = done.stdout.split()[-2:]
    assert seen == "[]", f"the worker node sees the driver's folders: {seen}"
    return node


def _wait_for_idle_cpus(env: dict, cpus: int = 2, timeout: float = 90) -> None:
    """Wait until the cluster has `cpus` CPUs free: a killed or ended driver's trial workers hold
    theirs until Ray reaps them, and a sweep started before then runs on the nodes left. Fails
    with every node's state (alive, why it died, its resources) if that never happens."""
    probe = ("import json, time, ray; ray.init(address='auto', logging_level='ERROR')\n"
             f"end = time.time() + {timeout}\n"
             f"while ray.available_resources().get('CPU', 0) < {cpus} and time.time() < end:\n"
             "    time.sleep(0.5)\n"
             "keys = ('NodeID', 'Alive', 'DeathReasonMessage', 'Resources')\n"
             "print(json.dumps([{k: n.get(k) for k in keys} for n in ray.nodes()]))\n"
             "print(ray.available_resources().get('CPU', 0))")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          timeout=timeout + 60)
    assert done.returncode == 0, done.stderr[-2000:]
    nodes, free = done.stdout.strip().splitlines()[-2:]
    assert float(free) >= cpus, f"{free} of {cpus} CPUs free after {timeout:g} s; nodes: {nodes}"


def doc_commands() -> list[str]:
    """docs/cluster.md's bash blocks, line continuations joined, comments cut."""
    text = (REPO / "docs" / "cluster.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s+#", line)[0].strip()
            if line:
                lines.append(line)
    return lines


def run(command: str, env: dict, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stdout + done.stderr, f"{command}\n{done.stderr[-3000:]}"
    return done


def test_the_cluster_recipe_runs_as_written(cluster, s3_server, postgres_url, tiny_csv, tmp_path):
    env, worker = cluster
    store = s3_server.bucket("recipe") + "/fer"
    given = {"DATA": str(tiny_csv), "STORE": store, "STUDY_DB": without_password(postgres_url)[0],
             "PGPASSWORD": PG_PASSWORD}
    head = tmp_path / "fer-sweeps"  # the project folder on the head node: its configs, no results
    shutil.copytree(REPO / "configs", head / "configs")
    gpu = head / "configs" / "cnn_gpu.yaml"  # its VGGs narrowed for two 1-CPU nodes (as gpu_check --tiny does)
    gpu.write_text(gpu.read_text().replace("[64, 128, 256, 512]", "[8, 16, 32, 64]")
                   .replace("[48, 96, 192, 384]", "[8, 8, 16, 32]").replace("[32, 64, 128, 256]", "[4, 8, 16, 32]"))
    commands = doc_commands()
    assert [c for c in commands if c.startswith(LAUNCHER)] and "$STORE" in commands[-1]
    outputs = {}
    for command in commands:
        if command.startswith(LAUNCHER) or any(command.startswith(f"export {k}=") for k in given):
            continue
        extra = next((v for k, v in SHORTER.items() if command.startswith(k)), [])
        outputs[command.split()[3]] = run(" ".join([command, *extra]), {**env, **given}, head).stdout
    sweep = outputs["run"]
    assert "gpus_per_trial auto: 1 trial per GPU (no CUDA device); 1 GPU and 1 CPU per trial" in sweep
    assert len(ENDED.findall(sweep)) == 2
    assert re.search(r"cnn budget: 1 GPU x 3600 s, .*, \d+% unused \(done after \d+ s\)\n", sweep)  # 2 trials, done
    assert (f"report: python -m analysis report {store}/gpu-hour --optuna-storage {given['STUDY_DB']} --out report"
            in sweep)  # written here, not there
    experiment = f"{store}/gpu-hour"
    _, histories = trial_histories(f"{experiment}/cnn")
    assert len(histories) == 2
    for h in histories.values():  # every trial ran on the node that cannot see the driver's disk, to the end
        assert set(h["node_id"]) == {worker} and h["training_iteration"].tolist() == [1, 2]
    (best,) = best_trials(experiment)
    assert best["checkpoint"].startswith(f"{experiment}/cnn/trial_") and best["checkpoint"] in outputs["best"]
    assert (head / "ensemble-cnn" / "checkpoint.pt").is_file() and (head / "fer-cnn-ensemble.onnx").is_file()
    page = (head / "report" / "report.html").read_text()
    assert "<h2>Sweep</h2>" in page and "best cnn" in page
    assert (head / "report" / "sweep_cnn_history.png").is_file()  # the study, read from the server it was given
    keys = s3_server.keys("recipe")
    assert keys and all(k.startswith("fer/gpu-hour/") for k in keys if not k.endswith("/"))  # ("/": folder markers)
    for key in keys:
        body = s3_server.client().get_object(Bucket="recipe", Key=key)["Body"].read()
        assert PG_PASSWORD.encode() not in body, key


def test_every_reading_command_takes_an_s3_experiment_and_resume_continues_it(cluster, s3_server, tiny_csv,
                                                                               tmp_path):
    """A CPU sweep on both nodes, its driver killed once two trials have ended, resumed on s3://;
    its study, kept on the driver, is published as optuna.db; then the reading commands."""
    env, worker = cluster
    store = s3_server.bucket("reading") + "/x"
    space = tiny_sweep(tmp_path / "space.yaml", n=4, epochs=3, sched="fifo")
    cmd = [sys.executable, "-m", "search", "run", str(space), "--data", str(tiny_csv), "--storage-path", store,
           "--name", "exp", "--address", f"127.0.0.1:{PORT}", "--no-report"]
    _wait_for_idle_cpus(env)  # (the test before may have left trial workers Ray has not reaped yet)
    before = _kill_once_two_trials_ended(cmd, tmp_path / "first.log", **{k: env[k] for k in s3_server.env},
                                         RAY_AUTH_MODE="token", FER_CACHE_DIR=env["FER_CACHE_DIR"])
    _wait_for_idle_cpus(env)  # the killed driver's trials
    done = subprocess.run(cmd + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    exp = f"{store}/exp"
    table = trials_table(exp)
    assert len(table) == 4 and set(table["status"]) == {"TERMINATED"} and before <= set(table["trial_id"])
    assert table["checkpoint"].str.startswith(f"{exp}/cnn/trial_").all()
    histories = trial_histories(f"{exp}/cnn")[1]
    nodes = {n for h in histories.values() for n in h["node_id"]}  # (Ray may restore a trial on either node)
    assert len(nodes) == 2 and worker in nodes, (
        f"worker node {worker}; each trial's nodes, epoch by epoch: "
        f"{ {t: h['node_id'].tolist() for t, h in histories.items()} }\nthe resumed driver:\n{done.stdout[-3000:]}")

    def search(*args, ok=True):
        out = subprocess.run([sys.executable, "-m", "search", *args], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=400)
        assert (out.returncode == 0) == ok, out.stdout[-2000:] + out.stderr[-2000:]
        return out

    assert len(search("table", exp).stdout.splitlines()) == 5
    assert "pareto: optimal" in search("pareto", exp).stdout
    assert "wrote refit/checkpoint.pt" in search("refit", exp, "--family", "cnn", "--out", "refit").stdout
    no_out = search("ensemble", exp, ok=False)
    assert no_out.returncode == 2 and no_out.stderr.strip().splitlines() == [
        f"search: error: {exp}: an experiment at a storage URI is only read; give --out, a local folder for what "
        "this command writes (e.g. --out ensemble_all)"]
    warm = search("run", str(space), "--data", str(tiny_csv), "--storage-path", str(tmp_path / "local"), "--name",
                  "warm", "--warm-start-from", exp, "--num-samples", "1", "--max-epochs", "1", "--no-report")
    assert "4 of 4 finished trials imported" in warm.stdout
    keys = s3_server.keys("reading")
    assert "x/exp/cnn/optuna.db" in keys  # the study, published beside Tune's files; nothing else written:
    assert all(k.startswith("x/exp/") for k in keys if not k.endswith("/"))  # ("/": folder markers)
