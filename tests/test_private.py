"""Private internals of MLflow are used only on tested versions, with the public path elsewhere."""

from __future__ import annotations

import re
import tomllib
import warnings
from pathlib import Path

import pytest

from ml_experiment import _private
from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker
from ml_experiment.tracking.record import RunRecord
from ml_experiment.tracking.recorder import Recorder

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


pytestmark = pytest.mark.usefixtures("fresh_private_gates")


def test_the_supported_range_is_the_tested_range() -> None:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    for library, (low, high) in _private.TESTED.items():
        spec = next(d for d in deps if re.match(rf"{library}\b[<>=]", d))
        assert spec == f"{library}>={low},<{high}", spec
        # The suite runs on a version inside it: this is the tested version.
        assert _private.supported(library)


def _record() -> RunRecord:
    return RunRecord(
        experiment="e", name="t", status="FINISHED", end_time=None,
        params={"a": 1}, metrics={"m": 0.5}, steps=[(0, {"m": 1.0})], tags={"k": "v"},
    )  # fmt: skip


def _read(uri: str, run_id: str) -> tuple:
    r = RunRecord.load(run_id, tracking_uri=uri)
    return r.status, r.params, r.metrics, r.steps, r.tags


def test_an_untested_mlflow_takes_the_public_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'kc.db'}"
    reference = Recorder(MLflowTracker(KnowledgeCenter.resolve(uri))).write(_record())
    monkeypatch.setitem(_private.TESTED, "mlflow", ("9.0", "9.1"))
    _private.supported.cache_clear()
    with pytest.warns(RuntimeWarning, match=r"mlflow .* is outside the tested range 9.0-9.1"):
        tracker = MLflowTracker(KnowledgeCenter.resolve(uri))
    assert tracker._sql_store is None
    run_id = Recorder(tracker).write(_record())
    assert _read(uri, run_id)[1:] == _read(uri, reference)[1:]


def test_a_private_path_that_no_longer_fits_warns_once_and_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'kc.db'}"
    tracker = MLflowTracker(KnowledgeCenter.resolve(uri))

    def changed(*args: object, **kwargs: object) -> str:
        raise TypeError("write_run() got an unexpected keyword argument")

    monkeypatch.setattr(_private, "write_run", changed)
    with pytest.warns(RuntimeWarning, match="no longer takes the one-transaction write"):
        first = Recorder(tracker).write(_record())
    assert tracker._sql_store is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        second = Recorder(tracker).write(_record())
    assert _read(uri, first) == _read(uri, second)
    assert _read(uri, first)[0] == "FINISHED"
    # One run per write: the failed private attempt left nothing behind.
    exp = tracker.client.get_experiment_by_name("e")
    assert len(tracker.client.search_runs([exp.experiment_id])) == 2
