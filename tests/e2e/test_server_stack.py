"""The team stack: ``mlflow server`` on PostgreSQL with an S3 artifact store, studies in PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import run_cli, write
from tests.services import free_port, stop_process, wait_healthy

pytestmark = pytest.mark.slow

OBJECTIVE = """
from pathlib import Path
from ml_experiment import job

@job
def main(x: float = 0.0):
    print(f"x={x}")
    Path("model.txt").write_text(str(x))
    return {"y": x * x}, {"model": "model.txt"}
"""


@pytest.fixture
def team_server(postgres: str, s3_server: dict[str, str], tmp_path: Path) -> Iterator[str]:
    import psycopg

    with psycopg.connect(f"{postgres}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS mlflow_stack")
        conn.execute("CREATE DATABASE mlflow_stack")
    port = free_port()
    backend = postgres.replace("postgresql://", "postgresql+psycopg://") + "/mlflow_stack"
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1", "--backend-store-uri", backend]
    cmd += ["--artifacts-destination", "s3://mlflow/artifacts"]
    env = {**os.environ, **s3_server, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout=180)
        yield url
    finally:
        stop_process(proc)


def test_group_on_postgresql_and_s3(team_server, pg_database, s3_server, tmp_path) -> None:
    import boto3
    from mlflow.tracking import MlflowClient

    write(tmp_path / "obj.py", OBJECTIVE)
    job = {
        "name": "stack",
        "kind": "group",
        "num_trials": 6,
        "sampler": "random",
        "pruner": "none",
        "seed": 3,
        "param_space": {"x": "uniform(0, 1)"},
        "metric": "y",
        "study_storage": pg_database,
        "resources_per_worker": {"cpu": 1},
        "ray_config": {"num_cpus": 2},
        "run": ["obj.py"],
    }
    write(tmp_path / "g.json", json.dumps(job))
    res = run_cli("run", "g.json", "-q", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": team_server})
    assert res.returncode == 0, res.stdout + res.stderr
    assert not (tmp_path / "mlruns.db").exists() and not (tmp_path / "mlartifacts").exists()

    c = MlflowClient(team_server)
    runs = c.search_runs([c.get_experiment_by_name("stack").experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 6 and parent.data.tags["ml_experiment.study_storage"] == pg_database
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server["MLFLOW_S3_ENDPOINT_URL"],
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    keys = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="mlflow"):
        keys |= {o["Key"] for o in page.get("Contents", [])}
    for child in children:  # every trial's artifact and console log are objects in S3
        run_id = child.info.run_id
        assert any(k.endswith(f"{run_id}/artifacts/model/model.txt") for k in keys), run_id
        assert any(k.endswith(f"{run_id}/artifacts/logs/console.log") for k in keys), run_id
    assert any(k.endswith(f"{parent.info.run_id}/artifacts/report/index.html") for k in keys)
    best = parent.data.tags["best_trial_number"]
    assert float(parent.data.metrics["best_y"]) == max(r.data.metrics["y"] for r in children)
    assert best in {r.data.tags["ml_experiment.trial_number"] for r in children}
