"""The knowledge center as a real ``mlflow server`` on 127.0.0.1, and ``ml-experiment ui``."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from tests.conftest import EXAMPLES, artifact_paths, artifact_text, run_cli, write
from tests.services import free_port, stop_process, wait_healthy

pytestmark = pytest.mark.slow


def _listening_on(port: int) -> set[str]:
    """The local addresses with a socket listening on ``port`` (any process)."""
    import psutil

    return {
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    }


def test_experiment_and_group_on_a_tracking_server(mlflow_server: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    cwd = tmp_path / "work"
    cwd.mkdir()
    job = EXAMPLES / "quickstart" / "svm_experiment.yaml"
    res = run_cli("run", str(job), cwd=cwd, env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert res.returncode == 0, res.stderr
    assert not (cwd / "mlruns.db").exists()  # nothing went to the embedded default
    c = MlflowClient(mlflow_server)
    (run,) = c.search_runs([c.get_experiment_by_name("SVM #1").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["C"] == "10" and "val_accuracy" in run.data.metrics
    assert run.data.tags["seed.numpy"] == "1234" and "hw.cpu_model" in run.data.tags
    arts = set(artifact_paths(c, run.info.run_id))
    assert {"config/job.json", "environment/requirements.txt", "logs/console.log"} <= arts
    assert "val_accuracy=" in artifact_text(c, run.info.run_id, "logs/console.log")

    write(
        cwd / "obj.py",
        "from ml_experiment import job\n@job\ndef main(x=0.0):\n    return {'y': x * x}\n",
    )
    write(
        cwd / "g.yaml",
        f"""
        name: remote-group
        kind: group
        report: false
        num_trials: 4
        sampler: random
        seed: 3
        tracking_uri: {mlflow_server}
        param_space: {{x: 'uniform(-1, 1)'}}
        metric: {{name: y, direction: minimize}}
        ray_config: {{num_cpus: 2}}
        run: [obj.py]
        """,
    )
    res = run_cli("run", "g.yaml", cwd=cwd)
    assert res.returncode == 0, res.stderr
    runs = c.search_runs([c.get_experiment_by_name("remote-group").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 5 and len(children) == 4
    assert all(r.info.status == "FINISHED" for r in runs)


def test_ui_serves_the_knowledge_center_on_loopback(tmp_path: Path) -> None:
    write(
        tmp_path / "t.py", "from ml_experiment import job\n@job\ndef main():\n    return {'a': 1}\n"
    )
    write(tmp_path / "e.yaml", "name: for-ui\nrun: [t.py]\n")
    assert run_cli("run", "e.yaml", cwd=tmp_path).returncode == 0
    port = free_port()
    cli = str(Path(sys.executable).parent / "ml-experiment")
    proc = subprocess.Popen(
        [cli, "ui", "--port", str(port)], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, start_new_session=True, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        req = urllib.request.Request(
            f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=for-ui"
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert b"for-ui" in r.read()
        assert _listening_on(port) == {"127.0.0.1"}
    finally:
        stop_process(proc)
