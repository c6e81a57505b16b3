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
from tests.services import free_port, listening_pids, port_of, s3_keys

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

# Every process that imports a job script here (the driver, each worker) prints all its
# threads' stacks to a file of its own on SIGUSR2: a stalled test shows where each one waits.
STACKS = """
import faulthandler, os, signal
if os.environ.get("MLX_TEST_STACKS"):
    _stacks = open(os.path.join(os.environ["MLX_TEST_STACKS"], f"{os.getpid()}.txt"), "w")
    faulthandler.register(signal.SIGUSR2, file=_stacks, all_threads=True)
"""

OBJECTIVE = (
    STACKS
    + """
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
)


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
    temp: str  # both nodes' Ray folders (the second node shares the head's)
    env: dict[str, str]  # what the nodes run with, for the driver too


def _stacks(folder: Path) -> str:
    """Each live process that registered in ``folder`` (see STACKS): its command and stacks."""
    import psutil

    asked = {}
    for file in sorted(folder.glob("*.txt")):
        pid = int(file.stem)
        try:
            caught = int(Path(f"/proc/{pid}/status").read_text().split("SigCgt:")[1].split()[0], 16)
            if not caught & (1 << (signal.SIGUSR2 - 1)):  # another process took the pid
                continue
            command = " ".join(psutil.Process(pid).cmdline()).strip()[:200]
            os.kill(pid, signal.SIGUSR2)
        except (OSError, IndexError, psutil.Error):
            continue
        asked[file] = f"pid {pid}: {command}"
    time.sleep(2)  # each one writes from its own signal handler
    return "\n".join(
        f"--- {who}\n{file.read_text(errors='replace')}" for file, who in asked.items()
    )


def _trial_times(tracking_uri: str, experiment: str) -> str:
    """When each trial's run started and ended, and where: which trials a stall held up."""
    from mlflow.tracking import MlflowClient

    try:
        c = MlflowClient(tracking_uri)
        exp = c.get_experiment_by_name(experiment)
        runs = c.search_runs([exp.experiment_id], max_results=200) if exp else []
    except Exception as exc:
        return f"(no trial times: {exc})"
    if not runs:
        return "(no runs)"
    t0 = min(r.info.start_time for r in runs)
    lines = []
    for r in sorted(runs, key=lambda r: r.info.start_time):
        end = f"{(r.info.end_time - t0) / 1000:7.1f}" if r.info.end_time else "    ..."
        node = r.data.tags.get("ml_experiment.node", "")[:8]
        lines.append(
            f"{r.info.run_name:>10} {(r.info.start_time - t0) / 1000:7.1f} {end} "
            f"{r.info.status:9} {node}"
        )
    return "run, started s, ended s, status, node:\n" + "\n".join(lines)


def _ray_complaints(temp: str, per_file: int = 8) -> str:
    """The last errors and warnings in each Ray log of both nodes (their own files vanish)."""
    import re

    marked = re.compile(r"^\[[^\]]* [EWF] \d+|ERROR|WARNING|Traceback|Error:")
    # What every run here shows: a client leaving the object store, workers ending.
    usual = re.compile(r"store\.cc:\d+: Disconnecting client|dynolog|GPU profiling|Quick exit")
    found = []
    # session_[0-9]*: not session_latest, a link to the same folder
    for log in sorted(Path(temp).glob("session_[0-9]*/logs/*")):
        if not log.is_file() or log.suffix not in {".out", ".err", ".log"}:
            continue
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        hits = [line[:300] for line in lines if marked.search(line) and not usual.search(line)]
        if hits:
            found.append(f"--- {log.name}\n" + "\n".join(hits[-per_file:]))
    return "\n".join(found) or "(no errors or warnings in Ray's logs)"


def _db_clients(conn: Any, database: str, server_port: int) -> dict[int, int]:
    """The connections to ``database`` whose client is still there: client port -> its pid.

    A backend stays listed for a moment after its client closed; counting those would count a
    pool's replaced connection twice.
    """
    import psutil

    ports = {
        row[0]
        for row in conn.execute(
            "SELECT client_port FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
    }
    return {
        c.laddr.port: c.pid
        for c in psutil.net_connections("tcp")
        if c.pid and c.raddr and c.raddr.port == server_port and c.laddr.port in ports
    }


def _services(pg_url: str, urls: list[str]) -> str:
    """PostgreSQL's sessions (the study's and the tracking server's) and the servers' stacks."""
    import psycopg

    found = ["postgres sessions: database | pid | state | waits on | in a transaction for | query"]
    try:
        admin = pg_url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT datname, pid, state, concat(wait_event_type, ':', wait_event), "
                "now() - xact_start, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) "
                "FROM pg_stat_activity WHERE datname IS NOT NULL AND pid <> pg_backend_pid()"
            ).fetchall()
        found += [" | ".join(map(str, row)) for row in rows]
    except Exception as exc:
        found.append(f"(none read: {exc})")
    spy = Path(sys.executable).parent / "py-spy"
    for pid in sorted(listening_pids({port_of(url) for url in urls})):
        if not spy.exists():
            found.append("(py-spy is not installed: no stacks of the servers)")
            break
        try:
            dump = subprocess.run(
                [str(spy), "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60
            )
            found.append(f"--- py-spy dump --pid {pid}\n{dump.stdout}{dump.stderr}")
        except subprocess.TimeoutExpired:
            found.append(f"--- py-spy dump --pid {pid}: no answer in 60 s")
    return "\n".join(found)


def _stalled(
    run: subprocess.Popen[str],
    cluster: Cluster,
    tracking_uri: str,
    name: str,
    pg_url: str,
    proxy: str | None = None,
) -> str:
    """What a group that ran out of time shows: its output, its trials' times, Ray's complaints,
    where its processes wait, and what the database and the servers (tracking, the study's
    gRPC ``proxy``) are doing meanwhile."""
    stacks = _stacks(Path(cluster.env["MLX_TEST_STACKS"]))
    services = _services(pg_url, [tracking_uri] + ([proxy] if proxy else []))
    _stop(run)
    out = run.communicate()[0] or ""  # with what an interrupted communicate() had read
    return (
        f"the group did not end in time; its output:\n{out}\n"
        f"{_trial_times(tracking_uri, name)}\n{_ray_complaints(cluster.temp)}\n"
        f"the stacks of the driver and of each worker that ran a trial:\n{stacks}\n{services}"
    )


@pytest.fixture
def two_nodes(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a node without the driver's disk needs root and unshare (util-linux)")
    from filelock import FileLock

    # One such cluster at a time across xdist workers: two declare 16 CPUs and start 16 workers
    # on what is, in CI, a 2-core machine beside the other worker's tests. (xdist_group would
    # say it more plainly, but with pytest 9.2 and xdist 3.8 it groups nothing.)
    with FileLock(tmp_path_factory.getbasetemp().parent / "two-node-cluster.lock"):
        yield from _two_nodes(tmp_path)


def _two_nodes(tmp_path: Path) -> Iterator[Cluster]:
    port = free_port()
    temp = tempfile.mkdtemp(prefix="mlx-cluster-")
    env = {**ENV, "MLX_TEST_STACKS": os.path.join(temp, "stacks")}
    os.mkdir(env["MLX_TEST_STACKS"])
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=4", "--disable-usage-stats"]
    head = subprocess.Popen(
        [RAY, "start", "--head", f"--port={port}", f"--temp-dir={temp}",
         "--include-dashboard=false", f"--dashboard-agent-listen-port={free_port()}", *common],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
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
        # Its own agent port: two nodes on one host would both take Ray's default one.
        agent = f"--dashboard-agent-listen-port={free_port()}"
        node = " ".join([RAY, "start", f"--address=127.0.0.1:{port}", agent, *common])
        second = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", f"{mounts} && exec {node}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
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
        cluster.temp = temp
        cluster.env = env
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
    env = {**two_nodes.env, "MLFLOW_TRACKING_URI": mlflow_server}
    run = subprocess.Popen(
        [str(Path(sys.executable).parent / "ml-experiment"), "run", "g.json", "-q"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    database, peak, owners = pg_database.rsplit("/", 1)[1], 0, set()
    deadline = time.time() + 420  # well inside the test's timeout, so a hang shows its output
    with psycopg.connect(pg_database.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        while run.poll() is None:
            live = _db_clients(conn, database, conn.info.port)
            peak, owners = max(peak, len(live)), owners | set(live.values())
            if time.time() > deadline:
                proxy = study_url if storage == "grpc" else None
                pytest.fail(
                    _stalled(run, two_nodes, mlflow_server, "two-nodes", pg_database, proxy)
                )
            time.sleep(0.2)
    out = run.stdout.read() if run.stdout else ""
    assert run.returncode == 0, out
    if storage == "grpc":  # the proxy's pool only (1 connection, 2 more under load)
        proxy_pids = listening_pids({port_of(study_url)})
        assert owners == proxy_pids and 1 <= peak <= 3, (owners, proxy_pids, peak)
    else:  # each of the 9 processes (driver + 8 workers) keeps at most 3
        assert 1 <= peak <= 27, peak

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
        stored = {
            k.split(f"{run_id}/artifacts/", 1)[1] for k in keys if f"{run_id}/artifacts/" in k
        }
        if not {"model/weights.txt", "logs/console.log"} <= stored:
            listed = [f.path for f in c.list_artifacts(run_id)] + [
                f.path for f in c.list_artifacts(run_id, "logs")
            ]
            pytest.fail(f"{child.info.run_name} {run_id}: in S3 {sorted(stored)}, listed {listed}")
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


SLOW = (
    STACKS
    + """
import time
from ml_experiment import job

@job
def main(x: float = 0.0):
    time.sleep(3.0)  # long enough for the kill to land mid-trial
    return {"y": x}
"""
)


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
    env = {**two_nodes.env, "MLFLOW_TRACKING_URI": mlflow_server}
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
        try:
            out, _ = proc.communicate(timeout=400)
        except subprocess.TimeoutExpired:
            pytest.fail(_stalled(proc, two_nodes, mlflow_server, "lose-a-node", pg_database))
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
