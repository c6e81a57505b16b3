"""The knowledge center's resolution and the MLflow facade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ml_experiment.exceptions import ConfigError, TrackingError
from ml_experiment.tracking import KnowledgeCenter, MLflowTracker
from ml_experiment.tracking._mlflow import numeric_metrics


def test_default_is_sqlite_in_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    kc = KnowledgeCenter.resolve(None, cwd=tmp_path)
    assert kc.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlruns.db'}"
    assert kc.artifact_root == tmp_path.resolve() / "mlartifacts"
    assert kc.studies_path.parent == tmp_path.resolve()


def test_job_file_then_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert KnowledgeCenter.resolve(None, cwd=tmp_path).tracking_uri == "http://127.0.0.1:5999"
    kc = KnowledgeCenter.resolve("sqlite:///rel/kc.db", cwd=tmp_path)
    assert kc.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'rel' / 'kc.db'}"
    assert kc.artifact_root == tmp_path.resolve() / "rel" / "mlartifacts"
    with pytest.raises(ConfigError, match="unsupported tracking URI"):
        KnowledgeCenter.resolve("./mlruns", cwd=tmp_path)


def test_tracker_batches_and_uses_wal(tmp_path: Path) -> None:
    kc = KnowledgeCenter.resolve(f"sqlite:///{tmp_path / 'kc.db'}", cwd=tmp_path)
    tr = MLflowTracker(kc)
    run_id = tr.create_run("exp", run_name="r", tags={"t": 1})
    params = {f"p{i}": i for i in range(250)}  # more than one log_batch holds
    tr.log(run_id, params=params, metrics={"m": 1.5}, steps=[(0, {"s": 1.0}), (1, {"s": 2.0})])
    tr.log_text(run_id, "hello", "notes/a.txt")
    tr.end_run(run_id)
    run = tr.client.get_run(run_id)
    assert run.info.status == "FINISHED" and len(run.data.params) == 250
    assert [m.value for m in tr.client.get_metric_history(run_id, "s")] == [1.0, 2.0]
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").resolve().as_uri())
    mode = sqlite3.connect(tmp_path / "kc.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_long_param_values_are_truncated(tmp_path: Path) -> None:
    tr = MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{tmp_path / 'kc.db'}", cwd=tmp_path))
    run_id = tr.create_run("exp")
    tr.log(run_id, params={"big": "x" * 10000, "lst": [1, 2]})
    params = tr.client.get_run(run_id).data.params
    assert (
        len(params["big"]) == 6000 and params["big"].endswith("...") and params["lst"] == "[1, 2]"
    )


def test_numeric_metrics_rejects_non_numbers() -> None:
    assert numeric_metrics({"a": 1, "b": 2.5}) == {"a": 1.0, "b": 2.5}
    with pytest.raises(TrackingError, match="'flag' must be a number"):
        numeric_metrics({"flag": True})
