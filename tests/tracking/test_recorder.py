"""The Recorder: one record, the same run through the fast path and the public API; failures."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from ml_experiment.exceptions import ConfigError, TrackingError
from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker
from ml_experiment.tracking.record import RunRecord
from ml_experiment.tracking.recorder import Recorder


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kc.db'}"


@pytest.fixture
def tracker(uri: str) -> MLflowTracker:
    return MLflowTracker(KnowledgeCenter.resolve(uri))


def full_record(tmp_path: Path, parent: str) -> RunRecord:
    (tmp_path / "model.pkl").write_bytes(b"\x00model")
    folder = tmp_path / "plots"
    folder.mkdir(exist_ok=True)
    (folder / "a.txt").write_text("a")
    return RunRecord(
        experiment="exp",
        name="trial-7",
        parent_run_id=parent,
        status="FAILED",
        start_time=1_700_000_000.25,
        end_time=1_700_000_002.5,
        params={"lr": 0.01, "layers": [64, 32], "name": "svm", "api_key": "k-12345678"},
        metrics={"loss": 0.25, "acc": float("nan"), "big": float("inf")},
        steps=[(0, {"loss": 1.0}), (1, {"loss": 0.5}), (2, {"loss": 0.25})],
        tags={"ml_experiment.trial_number": 7, "ml_experiment.trial_state": "fail"},
        artifacts={"model.pkl": tmp_path / "model.pkl", "plots": folder, "raw.bin": b"\x01\x02"},
        seeds={"seed": "123", "seed.numpy": "5,6"},
        code={"commit": "abc123", "branch": "main", "dirty": "true", "patch": "diff --git a b"},
        environment={"python": "3.11.7", "os": "Linux"},
        hardware={"cpu": "x86", "cores": "2"},
        data={"Loader": "f" * 64},
        config={"name": "exp", "params": {"api_key": "k-12345678", "lr": 0.01}},
        requirements="numpy==2.0\n",
        python="/usr/bin/python\n3.11\n",
        console="hello k-12345678\n",
        error="ValueError: bad key k-12345678",
        traceback="Traceback ...\nValueError: bad key k-12345678\n",
    )


def comparable(record: RunRecord) -> dict[str, Any]:
    out = {f.name: getattr(record, f.name) for f in fields(record)}
    out.pop("run_id")
    out["metrics"] = _no_nan(record.metrics)
    out["steps"] = [(step, _no_nan(values)) for step, values in record.steps]
    return out


def _no_nan(values: dict[str, float]) -> dict[str, Any]:
    return {k: "nan" if math.isnan(v) else v for k, v in values.items()}


def test_fast_path_and_public_api_store_the_same_record(
    tmp_path: Path, tracker: MLflowTracker, uri: str
) -> None:
    assert tracker._sql_store is not None
    parent = tracker.create_run("exp", run_name="parent")
    recorder = Recorder(tracker, secrets=["notifier-secret"])
    fast_id = recorder.write(full_record(tmp_path, parent))
    tracker._sql_store = None
    public_id = recorder.write(full_record(tmp_path, parent))
    fast = RunRecord.load(fast_id, tracking_uri=uri)
    public = RunRecord.load(public_id, tracking_uri=uri)
    assert comparable(fast) == comparable(public)
    # What the record says, read back: names kept, secrets gone everywhere.
    assert fast.status == "FAILED" and fast.parent_run_id == parent
    assert fast.params["api_key"] == "***" and fast.params["layers"] == "[64, 32]"
    # The final values land at the last step.
    assert [(s, v.get("loss")) for s, v in fast.steps] == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert fast.metrics["big"] == pytest.approx(1.7976931348623157e308)
    assert fast.seeds == {"seed": "123", "seed.numpy": "5,6"}
    assert fast.code == {
        "commit": "abc123",
        "branch": "main",
        "dirty": "true",
        "patch": "diff --git a b",
    }
    assert fast.environment == {"python": "3.11.7", "os": "Linux"}
    assert fast.data == {"Loader": "f" * 64}
    assert sorted(fast.artifacts) == ["model.pkl", "plots/a.txt", "raw.bin"]
    assert fast.console == "hello ***\n"
    assert fast.error == "ValueError: bad key ***"
    assert fast.traceback is not None and "k-12345678" not in fast.traceback
    assert fast.config == {"name": "exp", "params": {"api_key": "***", "lr": 0.01}}
    assert fast.requirements == "numpy==2.0\n"


def test_a_missing_artifact_fails_the_run_with_its_name(
    tmp_path: Path, tracker: MLflowTracker, uri: str
) -> None:
    record = RunRecord(
        experiment="exp", name="t", status="FINISHED", end_time=None,
        metrics={"acc": 0.5}, artifacts={"model": tmp_path / "gone.pkl"},
    )  # fmt: skip
    run_id = Recorder(tracker).write(record)
    back = RunRecord.load(run_id, tracking_uri=uri)
    assert back.status == "FAILED" and back.metrics == {"acc": 0.5}
    assert back.error is not None
    assert f"artifact 'model': no such file or folder '{tmp_path / 'gone.pkl'}'" in back.error


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("metrics", {"acc@1:top": 0.5}, 'Invalid value "acc@1:top"'),
        ("params", {"a/../../b": 1}, "Invalid"),
    ],
)
def test_a_record_mlflow_refuses_is_a_failed_run_not_an_error(
    tracker: MLflowTracker, uri: str, field: str, value: Any, why: str
) -> None:
    record = RunRecord(experiment="exp", name="trial-3", status="FINISHED", tags={"n": 3})
    setattr(record, field, value)
    run_id = Recorder(tracker).write(record)
    back = RunRecord.load(run_id, tracking_uri=uri)
    assert back.status == "FAILED" and back.tags["n"] == "3"
    assert back.error is not None and back.error.startswith("could not record this run: ")
    assert why in back.error


def test_an_artifact_name_that_climbs_out_fails_only_that_run(
    tmp_path: Path, tracker: MLflowTracker, uri: str
) -> None:
    (tmp_path / "x").write_text("x")
    record = RunRecord(
        experiment="exp", name="t", status="FINISHED",
        artifacts={"../../../outside/x": tmp_path / "x"},
    )  # fmt: skip
    run_id = Recorder(tracker).write(record)
    back = RunRecord.load(run_id, tracking_uri=uri)
    assert back.status == "FAILED" and "could not record this run" in (back.error or "")
    assert not list(tmp_path.rglob("outside"))


class BrokenAtTheEnd(MLflowTracker):
    def end_run(self, run_id: str, status: str = "FINISHED", end_time: float | None = None) -> None:
        raise TrackingError("disk full")


def test_a_failing_final_write_becomes_a_note_on_the_original_error(uri: str) -> None:
    recorder = Recorder(BrokenAtTheEnd(KnowledgeCenter.resolve(uri)))
    record = RunRecord(experiment="exp", name="r")
    recorder.start(record)
    original = ValueError("the user's own error")
    recorder.finish_after(record, original)  # does not raise over it
    assert original.__notes__ == [
        f"also: could not write run {record.run_id} to the knowledge center: disk full"
    ]
    with pytest.raises(TrackingError, match=r"could not write run .*: disk full"):
        recorder.finish_after(RunRecord(experiment="exp", name="r2", run_id=record.run_id), None)


def test_load_says_what_is_missing(tracker: MLflowTracker, uri: str) -> None:
    with pytest.raises(ConfigError, match="no run 'nope' in the knowledge center"):
        RunRecord.load("nope", tracking_uri=uri)
    # A plain MLflow run, not made by ml-experiment: readable, and its gaps named.
    run_id = tracker.create_run("plain", run_name="plain")
    tracker.log(run_id, params={"a": 1}, metrics={"m": 2.0})
    record = RunRecord.load(run_id, tracking_uri=uri)
    assert record.params == {"a": "1"} and record.metrics == {"m": 2.0}
    assert record.console is None and record.code == {}
    with pytest.raises(TrackingError, match=f"run {run_id} lacks its console .logs/console.log"):
        RunRecord.load(run_id, tracking_uri=uri, parts=("params", "console"))


def test_writes_wait_out_an_unreachable_store_then_give_up(monkeypatch):
    from ml_experiment.tracking._outage import StoreUnavailable, through_outage

    calls: list[int] = []
    retries: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("Connection refused")
        return "written"

    sleeps: list[float] = []
    assert through_outage(flaky, before_retry=lambda: retries.append(1), sleep=sleeps.append) == (
        "written"
    )
    assert len(calls) == 3 and len(retries) == 2 and sleeps == [0.5, 1.0]

    with pytest.raises(ValueError, match="refused"):  # a refusal is not an outage
        through_outage(lambda: (_ for _ in ()).throw(ValueError("refused")), sleep=sleeps.append)

    monkeypatch.setenv("ML_EXPERIMENT_STORE_OUTAGE_S", "0")
    with pytest.raises(StoreUnavailable, match="run the same command with --resume"):
        through_outage(lambda: (_ for _ in ()).throw(ConnectionError("down")), sleep=sleeps.append)
