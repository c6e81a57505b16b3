"""A tracking server that goes away in the middle of a group: waited out, or --resume finishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import CLI, run_cli, write
from tests.services import free_port, stop_process, wait_healthy

pytestmark = pytest.mark.slow

OBJECTIVE = """
import time
from ml_experiment import job

@job
def main(x: float = 0.0):
    time.sleep(0.05)
    return {"y": x * x}
"""


class Server:
    """``mlflow server`` on a fixed port and store, stopped and started again at will."""

    def __init__(self, store: Path) -> None:
        self.store, self.port = store, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--workers", "1"]
        cmd += ["--backend-store-uri", f"sqlite:///{self.store / 'kc.db'}"]
        cmd += ["--artifacts-destination", str(self.store / "artifacts")]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.proc = subprocess.Popen(
            cmd, cwd=self.store, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_healthy(self.url, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@pytest.fixture
def server(tmp_path: Path):
    store = tmp_path / "server"
    store.mkdir()
    s = Server(store)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def _group(folder: Path, trials: int) -> Path:
    write(folder / "obj.py", OBJECTIVE)
    job = {
        "name": "srv",
        "kind": "group",
        "num_trials": trials,
        "sampler": "random",
        "pruner": "none",
        "seed": 1,
        "param_space": {"x": "uniform(0, 1)"},
        "metric": "y",
        "resources_per_worker": {"cpu": 1},
        "ray_config": {"num_cpus": 2},
        "report": False,
        "run": ["obj.py"],
    }
    return write(folder / "g.json", json.dumps(job))


def _children(url: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    c = MlflowClient(url)
    exp = c.get_experiment_by_name("srv")
    if exp is None:
        return []
    runs = c.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_a_server_restarted_mid_group_loses_and_duplicates_nothing(server, tmp_path) -> None:
    _group(tmp_path, 100)
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url}
    proc = subprocess.Popen(
        [*CLI, "run", "g.json", "-q"], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 180
        while len(_children(server.url)) < 15:
            assert time.time() < deadline and proc.poll() is None, "the group did not start"
            time.sleep(0.3)
        server.stop()
        time.sleep(10)
        server.start()
        out, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out
    numbers = [r.data.tags["ml_experiment.trial_number"] for r in _children(server.url)]
    assert len(numbers) == 100 and len(set(numbers)) == 100


def test_a_server_that_stays_away_stops_the_group_and_resume_writes_the_rest(
    server, tmp_path
) -> None:
    _group(tmp_path, 30)
    # Short limits here; the defaults (MLflow's ~2 min per request, then 10 min) are for users.
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server.url,
        "ML_EXPERIMENT_STORE_OUTAGE_S": "3",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    proc = subprocess.Popen(
        [*CLI, "run", "g.json", "-q"], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        while len(_children(server.url)) < 5:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        server.stop()
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, out + err
    assert "has not answered for" in err and "run the same command with --resume" in err
    server.start()
    written = len(_children(server.url))
    assert written < 30
    res = run_cli(
        "run", "g.json", "--resume", "-q", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": server.url}
    )
    assert res.returncode == 0, res.stdout + res.stderr
    numbers = [
        r.data.tags["ml_experiment.trial_number"]
        for r in _children(server.url)
        if r.info.status == "FINISHED"
    ]
    failed = [(r.data.tags.get("ml_experiment.trial_number"), r.data.tags.get("error"))
              for r in _children(server.url) if r.info.status != "FINISHED"]  # fmt: skip
    assert len(numbers) >= 30 and len(set(numbers)) == len(numbers), failed


def test_the_servers_postgresql_restarted_mid_group(postgres, pg_database, tmp_path) -> None:
    backend = pg_database.replace("postgresql://", "postgresql+psycopg://")
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1", "--backend-store-uri", backend]
    cmd += ["--artifacts-destination", str(tmp_path / "artifacts")]
    server = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, timeout=180)
        _group(tmp_path, 60)
        proc = subprocess.Popen(
            [*CLI, "run", "g.json", "-q"], cwd=tmp_path, text=True,
            env={**os.environ, "MLFLOW_TRACKING_URI": url},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.time() + 180
            while len(_children(url)) < 10:
                assert time.time() < deadline and proc.poll() is None, "the group did not start"
                time.sleep(0.3)
            postgres.restart(after=5)
            out, _ = proc.communicate(timeout=400)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode == 0, out
        numbers = [r.data.tags["ml_experiment.trial_number"] for r in _children(url)]
        assert len(numbers) == 60 and len(set(numbers)) == 60
    finally:
        stop_process(server)
