"""A group on a two-node Ray cluster whose second node shares no disk with the driver.

The second node runs in its own mount namespace with empty tmpfs over the project folder and the
tracking server's store: any reliance on the driver's filesystem (the script, the study journal,
artifact paths) fails there. Study in PostgreSQL, runs and artifacts on an mlflow server.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import write
from tests.services import free_port, s3_keys

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

OBJECTIVE = """
import time
from pathlib import Path
from ml_experiment import job, Trial

@job
def main(x: float = 0.0):
    trial = Trial.get_current()
    for step in range(3):
        time.sleep(0.05)
        trial.report(x * (step + 1), step)  # the pruner, from whichever node runs this
        if trial.should_prune():
            import optuna
            raise optuna.TrialPruned()
    print(f"x={x:.4f}")
    Path("weights.txt").write_text(str(x))
    return {"y": x}, {"model": "weights.txt"}
"""


def _stop(proc: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class Cluster(str):
    """The head's address; ``second`` is the second node's ``ray start`` process."""

    second: subprocess.Popen[bytes]


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[Cluster]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a node without the driver's disk needs root and unshare (util-linux)")
    port = free_port()
    temp = tempfile.mkdtemp(prefix="mlx-cluster-")
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=4", "--disable-usage-stats"]
    head = subprocess.Popen(
        [RAY, "start", "--head", f"--port={port}", f"--temp-dir={temp}",
         "--include-dashboard=false", *common],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    hidden = [tmp_path / "project", tmp_path / "server"]
    for folder in hidden:
        folder.mkdir(exist_ok=True)
    mounts = " && ".join(f"mount -t tmpfs none '{folder}'" for folder in hidden)
    second: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.time() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.time() < deadline, "ray start --head did not open its port"
            time.sleep(0.5)
        node = " ".join([RAY, "start", f"--address=127.0.0.1:{port}", *common])
        second = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", f"{mounts} && exec {node}"],
            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        count = (
            "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        deadline = time.time() + 90
        while True:
            out = subprocess.run(
                [sys.executable, "-c", count, f"127.0.0.1:{port}"],
                env=ENV, capture_output=True, text=True, timeout=60,
            ).stdout.strip()  # fmt: skip
            if out.endswith("2"):
                break
            assert time.time() < deadline and second.poll() is None, "the second node did not join"
            time.sleep(1)
        cluster = Cluster(f"127.0.0.1:{port}")
        cluster.second = second
        yield cluster
    finally:
        if second is not None:
            _stop(second)
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.parametrize("storage", ["postgresql", "grpc"])
def test_group_on_two_nodes_without_a_shared_disk(
    two_nodes: Cluster,
    team_server: str,
    pg_database: str,
    s3_server: dict[str, str],
    storage: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """8 workers (4 per node); with the gRPC proxy, the database sees its few connections only."""
    import optuna
    import psycopg
    from mlflow.tracking import MlflowClient

    study_url = request.getfixturevalue("grpc_proxy") if storage == "grpc" else pg_database
    mlflow_server = team_server

    project = tmp_path / "project"
    write(project / "objective.py", OBJECTIVE)
    job = {
        "name": "two-nodes",
        "kind": "group",
        "num_trials": 40,
        "sampler": "random",
        "pruner": "median",
        "seed": 5,
        "param_space": {"x": "uniform(0, 1)"},
        "metric": "y",
        "study_storage": study_url,
        "resources_per_worker": {"cpu": 1},
        "ray_config": {"address": two_nodes},
        "report": False,
        "run": ["objective.py"],
    }
    write(project / "g.json", json.dumps(job))
    env = {**ENV, "MLFLOW_TRACKING_URI": mlflow_server}
    run = subprocess.Popen(
        [str(Path(sys.executable).parent / "ml-experiment"), "run", "g.json", "-q"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    database, peak = pg_database.rsplit("/", 1)[1], 0
    deadline = time.time() + 420  # well inside the test's timeout, so a hang shows its output
    with psycopg.connect(pg_database.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        while run.poll() is None:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
            ).fetchone()
            peak = max(peak, row[0] if row else 0)
            if time.time() > deadline:
                _stop(run)
                pytest.fail(f"the group did not end in 420 s; its output:\n{run.stdout.read()}")
            time.sleep(0.2)
    out = run.stdout.read() if run.stdout else ""
    assert run.returncode == 0, out
    # Through the proxy: its pool only (1 connection, 2 more under load), whatever the workers.
    # Direct: each of the 9 processes (driver + 8 workers) keeps at most 3.
    assert 1 <= peak <= (3 if storage == "grpc" else 27), peak

    c = MlflowClient(mlflow_server)
    runs = c.search_runs([c.get_experiment_by_name("two-nodes").experiment_id], max_results=100)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 40
    nodes = {r.data.tags["ml_experiment.node"] for r in children}
    assert len(nodes) == 2, nodes  # trials ran on both nodes
    complete = [r for r in children if r.info.status == "FINISHED"]
    keys = s3_keys(s3_server)
    for child in complete:  # uploaded by the worker that made them, through the server, to S3
        run_id = child.info.run_id
        assert any(k.endswith(f"{run_id}/artifacts/model/weights.txt") for k in keys), run_id
        assert any(k.endswith(f"{run_id}/artifacts/logs/console.log") for k in keys), run_id
    assert parent.data.tags["best_trial_number"] in {
        r.data.tags["ml_experiment.trial_number"] for r in complete
    }
    study = optuna.load_study(study_name="two-nodes", storage=pg_database)
    by_number = {str(t.number): t for t in study.trials}
    for node in nodes:  # pruning reports reached the study from each node
        ran_here = [r for r in children if r.data.tags["ml_experiment.node"] == node]
        assert any(
            by_number[r.data.tags["ml_experiment.trial_number"]].intermediate_values
            for r in ran_here
        )


SLOW = """
import time
from ml_experiment import job

@job
def main(x: float = 0.0):
    time.sleep(3.0)  # long enough for the kill to land mid-trial
    return {"y": x}
"""


def test_a_node_lost_mid_trial_fails_its_trials_and_the_group_finishes(
    two_nodes: Cluster, mlflow_server: str, pg_database: str, tmp_path: Path
) -> None:
    import psutil
    from mlflow.tracking import MlflowClient

    project = tmp_path / "project"
    write(project / "slow.py", SLOW)
    job = {
        "name": "lose-a-node",
        "kind": "group",
        "num_trials": 32,  # four waves of 8: the kill lands while one runs
        "sampler": "random",
        "pruner": "none",
        "seed": 2,
        "param_space": {"x": "uniform(0, 1)"},
        "metric": "y",
        "study_storage": pg_database,
        "resources_per_worker": {"cpu": 1},
        "ray_config": {"address": two_nodes},
        "report": False,
        "run": ["slow.py"],
    }
    write(project / "g.json", json.dumps(job))
    env = {**ENV, "MLFLOW_TRACKING_URI": mlflow_server}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ml-experiment"), "run", "g.json", "-q"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    c = MlflowClient(mlflow_server)
    try:
        deadline = time.time() + 240
        while True:  # once trials have finished on both nodes, the second node's raylet dies
            exp = c.get_experiment_by_name("lose-a-node")
            runs = c.search_runs([exp.experiment_id]) if exp else []
            if len({r.data.tags.get("ml_experiment.node") for r in runs} - {None}) == 2:
                break
            assert time.time() < deadline and proc.poll() is None, "no trial on both nodes"
            time.sleep(0.2)
        time.sleep(0.5)  # a later wave of trials is running on both nodes
        below = psutil.Process(two_nodes.second.pid).children(recursive=True)
        assert [p for p in below if p.name() == "raylet"], below
        # The node dies: its raylet and every process it runs (its workers mid-trial). A raylet
        # alone may die unnoticed while its workers finish the trial they run.
        for process in below:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    runs = c.search_runs([c.get_experiment_by_name("lose-a-node").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    numbers = [r.data.tags["ml_experiment.trial_number"] for r in children]
    assert len(numbers) == len(set(numbers))  # nothing recorded twice
    failed = [r for r in children if r.info.status == "FAILED"]
    assert failed, out  # the trial that ran on the lost node, with its reason
    assert all(r.data.tags.get("error") for r in failed)
    finished = [r for r in children if r.info.status == "FINISHED"]
    assert len(finished) + len(failed) == len(children) >= 32, out
    assert "[repeated" not in out
