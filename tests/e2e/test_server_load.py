"""Load: four groups at once (four drivers) against one mlflow server on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import CLI, write
from tests.services import free_port, stop_process, wait_healthy

pytestmark = pytest.mark.slow

# Four drivers writing at once is the point; the 4 x 200 figures live in benchmarks/server_bench.py.
GROUPS, TRIALS = 4, 50


@pytest.fixture
def pg_server(pg_database: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    backend = pg_database.replace("postgresql://", "postgresql+psycopg://")
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "2", "--backend-store-uri", backend]
    cmd += ["--artifacts-destination", str(tmp_path / "artifacts")]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
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


def test_four_groups_at_once_against_one_server(pg_server: str, tmp_path: Path, capsys) -> None:
    from mlflow.tracking import MlflowClient

    write(tmp_path / "obj.py", "from ml_experiment import job\n@job\ndef main(x=0.0):\n"
          "    return {'y': x * x}\n")  # fmt: skip
    procs = []
    started = time.time()
    for g in range(GROUPS):
        job = {
            "name": f"load-{g}", "kind": "group", "num_trials": TRIALS, "sampler": "random",
            "pruner": "none", "seed": g, "param_space": {"x": "uniform(0, 1)"}, "metric": "y",
            "resources_per_worker": {"cpu": 1}, "ray_config": {"num_cpus": 1},
            "report": False, "run": ["obj.py"],
        }  # fmt: skip
        folder = tmp_path / f"g{g}"
        folder.mkdir()
        write(folder / "obj.py", (tmp_path / "obj.py").read_text())
        write(folder / "g.json", json.dumps(job))
        procs.append(
            subprocess.Popen(
                [*CLI, "run", "g.json", "-q"],
                cwd=folder,
                text=True,
                env={**os.environ, "MLFLOW_TRACKING_URI": pg_server},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    outputs = [p.communicate(timeout=1200)[0] for p in procs]
    wall = time.time() - started
    assert [p.returncode for p in procs] == [0] * GROUPS, outputs
    c = MlflowClient(pg_server)
    total = 0
    for g in range(GROUPS):
        exp = c.get_experiment_by_name(f"load-{g}")
        runs, token = [], None
        while True:
            page = c.search_runs([exp.experiment_id], max_results=1000, page_token=token)
            runs += page
            token = page.token
            if not token:
                break
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert len(children) == TRIALS and all("y" in r.data.metrics for r in children)
        total += len(children)
    with capsys.disabled():
        print(f"\n{GROUPS} groups x {TRIALS} trials against one server on PostgreSQL: {wall:.1f} s, "
              f"{wall / total * 1000:.1f} ms per trial overall ({total / wall:.1f} trials/s)")  # fmt: skip
