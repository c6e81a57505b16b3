"""The team stack: ``mlflow server`` on PostgreSQL with an S3 artifact store, studies in PostgreSQL."""

from __future__ import annotations

import json

import pytest
from tests.conftest import run_cli, write
from tests.services import s3_keys

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


def test_group_on_postgresql_and_s3(team_server, pg_database, s3_server, tmp_path) -> None:
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
    keys = s3_keys(s3_server)
    for child in children:  # every trial's artifact and console log are objects in S3
        run_id = child.info.run_id
        assert any(k.endswith(f"{run_id}/artifacts/model/model.txt") for k in keys), run_id
        assert any(k.endswith(f"{run_id}/artifacts/logs/console.log") for k in keys), run_id
    assert any(k.endswith(f"{parent.info.run_id}/artifacts/report/index.html") for k in keys)
    best = parent.data.tags["best_trial_number"]
    assert float(parent.data.metrics["best_y"]) == max(r.data.metrics["y"] for r in children)
    assert best in {r.data.tags["ml_experiment.trial_number"] for r in children}
