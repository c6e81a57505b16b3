"""A finished run written in one transaction reads back exactly like one written through MlflowClient."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

from ml_experiment._private import sql_store
from ml_experiment.exceptions import ConfigError
from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker


@pytest.fixture
def tracker(tmp_path: Path) -> MLflowTracker:
    return MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{tmp_path / 'kc.db'}"))


def _write(tracker: MLflowTracker, *, fast: bool, **overrides: Any) -> str:
    store = tracker._sql_store
    if not fast:
        tracker._sql_store = None  # the public path: create_run, log_batch, set_terminated
    now = time.time()
    kwargs: dict[str, Any] = dict(
        run_name="trial-7",
        status="FAILED",
        start_time=now - 2.5,
        end_time=now - 0.5,
        tags={"ml_experiment.trial_number": 7, "seed": 123, "error": "ValueError: boom"},
        params={"lr": 0.01, "layers": [64, 32], "name": "svm"},
        metrics={"loss": 0.25, "acc": float("nan"), "big": float("inf")},
        step=2,
        steps=[(0, {"loss": 1.0}), (1, {"loss": 0.5}), (2, {"loss": 0.25})],
    )
    kwargs.update(overrides)
    if "parent_run_id" not in kwargs:
        kwargs["parent_run_id"] = tracker.create_run("exp", run_name="parent")
    try:
        return tracker.record_run("exp", **kwargs)
    finally:
        tracker._sql_store = store


def _view(tracker: MLflowTracker, run_id: str) -> dict[str, Any]:
    c = tracker.client
    run = c.get_run(run_id)
    info = run.info
    history = {
        key: sorted((m.step, m.value if not math.isnan(m.value) else "nan") for m in
                    c.get_metric_history(run_id, key))
        for key in run.data.metrics
    }  # fmt: skip
    return {
        "info": (info.status, info.lifecycle_stage, info.run_name, info.user_id,
                 info.start_time, info.end_time, info.experiment_id),
        "artifact_uri_ends": info.artifact_uri.endswith(f"/{run_id}/artifacts"),
        "params": run.data.params,
        "tags": {k: v for k, v in run.data.tags.items() if k != "mlflow.parentRunId"},
        "metrics": {k: "nan" if math.isnan(v) else v for k, v in run.data.metrics.items()},
        "history": history,
    }  # fmt: skip


def test_the_one_transaction_path_matches_the_public_api(tracker: MLflowTracker) -> None:
    assert tracker._sql_store is not None
    start = time.time() - 3
    fast = _write(tracker, fast=True, start_time=start, end_time=start + 2)
    slow = _write(tracker, fast=False, start_time=start, end_time=start + 2)
    a, b = _view(tracker, fast), _view(tracker, slow)
    assert a == b
    assert a["metrics"] == {"loss": 0.25, "acc": "nan", "big": 1.7976931348623157e308}
    assert a["history"]["loss"] == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert a["info"][0] == "FAILED" and a["tags"]["mlflow.runName"] == "trial-7"


def test_fast_runs_are_found_by_search_and_as_children(tracker: MLflowTracker) -> None:
    parent = tracker.create_run("exp", run_name="parent")
    ids = {
        _write(tracker, fast=True, parent_run_id=parent, run_name=f"trial-{i}") for i in range(3)
    }
    assert {r.info.run_id for r in tracker.child_runs("exp", parent)} == ids
    found = tracker.client.search_runs(
        [tracker.experiment_id("exp")],
        filter_string="metrics.loss < 0.3 and params.name = 'svm' and tags.seed = '123'",
    )
    assert ids <= {r.info.run_id for r in found}
    # An artifact can be added after the run was written (a failed trial's traceback).
    run_id = next(iter(ids))
    tracker.log_text(run_id, "Traceback ...", "error/traceback.txt")
    assert [f.path for f in tracker.client.list_artifacts(run_id, "error")] == [
        "error/traceback.txt"
    ]


def test_invalid_input_raises_mlflows_error_and_writes_nothing(tracker: MLflowTracker) -> None:
    from mlflow.exceptions import MlflowException

    parent = tracker.create_run("exp", run_name="parent")
    with pytest.raises(MlflowException, match="250"):
        _write(tracker, fast=True, parent_run_id=parent, params={"k" * 300: 1})
    assert tracker.child_runs("exp", parent) == []


def test_a_deleted_experiment_is_refused(tracker: MLflowTracker) -> None:
    tracker.create_run("exp", run_name="parent")
    tracker.client.delete_experiment(tracker.experiment_id("exp"))
    with pytest.raises(ConfigError, match=r"experiment 'exp' is deleted .* restore it"):
        _write(tracker, fast=True, parent_run_id=None)


def test_only_mlflows_sql_store_takes_the_one_transaction_path() -> None:
    from mlflow.tracking import MlflowClient

    # Constructing a REST client sends nothing; the port is never contacted.
    assert sql_store(MlflowClient("http://127.0.0.1:9")) is None
