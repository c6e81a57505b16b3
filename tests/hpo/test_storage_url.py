"""Study storage chosen by URL: a journal path, PostgreSQL (RDB), Optuna's gRPC proxy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import all_runs, run_cli, write
from tests.services import free_port

from ml_experiment.exceptions import ConfigError
from ml_experiment.hpo import open_storage, public_url, storage_kind, study_location


def test_kinds_and_masked_passwords(tmp_path, monkeypatch):
    assert storage_kind(str(tmp_path / "s.journal")) == "journal"
    assert storage_kind("postgresql://u@h:5432/db") == "rdb"
    assert storage_kind("postgresql+psycopg://u@h/db") == "rdb"
    assert storage_kind("grpc://127.0.0.1:13000") == "grpc"
    with pytest.raises(ConfigError, match=r"unsupported study storage 'redis://u:\*\*\*@h'"):
        storage_kind("redis://u:pw@h")
    assert public_url("postgresql://u:s3cret@h/db") == "postgresql://u:***@h/db"
    monkeypatch.setenv("ML_EXPERIMENT_STUDY_STORAGE", "grpc://127.0.0.1:1")
    assert study_location(None, tmp_path / "j") == "grpc://127.0.0.1:1"
    assert study_location("postgresql://u@h/db", tmp_path / "j") == "postgresql://u@h/db"
    monkeypatch.delenv("ML_EXPERIMENT_STUDY_STORAGE")
    assert study_location(None, tmp_path / "j") == str(tmp_path / "j")


def test_postgresql_storage_opens_and_keeps_a_study(pg_database):
    import optuna

    storage = open_storage(pg_database)
    assert open_storage(pg_database) is storage  # one per process
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    again = optuna.load_study(study_name="s", storage=pg_database)
    assert len(again.trials) == 3


GROUP = """
from ml_experiment import job, Trial

@job
def main(x: float = 0.0):
    trial = Trial.get_current()
    for step in range(3):
        trial.report(x * (step + 1), step)  # pruning reports from the worker, by URL
    return {"y": x}
"""


def _group(folder: Path, storage: str, trials: int, workers: int) -> Path:
    write(folder / "g.py", GROUP)
    job = {
        "name": "pg-group",
        "kind": "group",
        "num_trials": trials,
        "sampler": "random",
        "pruner": "median",
        "seed": 1,
        "param_space": {"x": "uniform(0, 1)"},
        "metric": "y",
        "study_storage": storage,
        "resources_per_worker": {"cpu": 1},
        "ray_config": {"num_cpus": workers},
        "report": False,
        "run": ["g.py"],
    }
    return write(folder / "g.json", json.dumps(job))


@pytest.mark.slow
def test_group_with_its_study_in_postgresql(pg_database, tmp_path, client_at):
    import optuna

    _group(tmp_path, pg_database, trials=6, workers=2)
    res = run_cli("run", "g.json", "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not (tmp_path / "optuna-studies.journal").exists()  # the study is in PostgreSQL
    study = optuna.load_study(study_name="pg-group", storage=pg_database)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6
    assert all(len(t.intermediate_values) == 3 for t in study.trials)
    c = client_at(tmp_path)
    parent = next(r for r in all_runs(c, "pg-group") if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.tags["ml_experiment.study_storage"] == pg_database
    assert len(all_runs(c, "pg-group")) == 7


@pytest.mark.slow
def test_group_through_the_grpc_proxy_keeps_connections_bounded(pg_database, tmp_path, client_at):
    import psycopg

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, optuna; from ml_experiment.hpo import open_storage; "
         "optuna.storages.run_grpc_proxy_server(open_storage(sys.argv[1]), host='127.0.0.1', "
         "port=int(sys.argv[2]))", pg_database, str(port)],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    database = pg_database.rsplit("/", 1)[1]
    peak = 0
    try:
        _group(tmp_path, f"grpc://127.0.0.1:{port}", trials=24, workers=8)
        time.sleep(2)  # the proxy binds its port
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        run = subprocess.Popen(
            [str(Path(sys.executable).parent / "ml-experiment"), "run", "g.json", "-q"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        with psycopg.connect(pg_database.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            while run.poll() is None:
                (count,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
                ).fetchone()
                peak = max(peak, count)
                time.sleep(0.2)
        out = run.stdout.read() if run.stdout else ""
        assert run.returncode == 0, out
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    # 8 workers and the driver share the proxy's pool: 1 connection, 2 more under load.
    assert 1 <= peak <= 3
    c = client_at(tmp_path)
    assert len(all_runs(c, "pg-group")) == 25
