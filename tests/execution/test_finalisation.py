"""A knowledge center that fails on the final write never hides the run's own outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import write

from ml_experiment.callbacks import Callback
from ml_experiment.cli import main
from ml_experiment.exceptions import TrackingError
from ml_experiment.tracking._mlflow import MLflowTracker

SCRIPT = """
from ml_experiment import job

@job
def main(mode: str = "ok"):
    if mode == "raise":
        raise ValueError("the user's own error")
    if mode == "ctrl-c":
        raise KeyboardInterrupt
    return {"acc": 1.0}
"""


@pytest.fixture
def broken_store(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The store accepts the run's start, then fails on the write that ends it."""
    ended: list[str] = []

    def end_run(
        self: MLflowTracker, run_id: str, status: str = "FINISHED", end_time: Any = None
    ) -> None:
        ended.append(status)
        raise TrackingError("database is locked (disk full)")

    monkeypatch.setattr(MLflowTracker, "end_run", end_run)
    return ended


def job_file(folder: Path, mode: str) -> Path:
    write(folder / "train.py", SCRIPT)
    path = folder / "job.json"
    path.write_text(json.dumps({"name": "e", "params": {"mode": mode}, "run": ["train.py"]}))
    return path


@pytest.mark.parametrize(
    ("mode", "code", "first"), [("raise", 1, "ValueError"), ("ctrl-c", 130, None)]
)
def test_the_original_outcome_is_shown_with_the_write_failure_second(
    workdir: Path,
    broken_store: list[str],
    capsys: pytest.CaptureFixture[str],
    mode: str,
    code: int,
    first: str | None,
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(job_file(workdir, mode))])
    assert exit_info.value.code == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("also: could not write run ") and "disk full" in err[-1]
    if first:
        assert err[-2].startswith("error: run ") and first in err[-2]
    # The failing final write was tried as FINISHED/FAILED/KILLED, then as FAILED.
    assert broken_store[-1] == "FAILED"


def test_a_failed_final_write_of_a_good_run_is_a_failed_run(
    workdir: Path, broken_store: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(job_file(workdir, "ok"))])
    assert exit_info.value.code == 1
    assert "could not write run" in capsys.readouterr().err


class Seen(Callback):
    def __init__(self) -> None:
        self.ended: list[Any] = []

    def on_job_end(self, config: Any, exception: BaseException | None = None, **kw: Any) -> None:
        self.ended.append(exception)


def test_on_job_end_fires_even_when_the_store_fails(workdir: Path, broken_store: list[str]) -> None:
    from ml_experiment import job
    from ml_experiment.config import ExperimentConfig
    from ml_experiment.exceptions import RunFailedError
    from ml_experiment.execution import run_experiment

    seen = Seen()

    @job(callbacks=[seen], log_system_info=False)
    def fails() -> None:
        raise ValueError("boom")

    config = ExperimentConfig(name="e", kind="experiment", run=[write(workdir / "x.py", "")])
    with pytest.raises(RunFailedError) as info:
        run_experiment(config, fails, script=None)
    assert isinstance(info.value.__cause__, ValueError)
    assert len(seen.ended) == 1 and isinstance(seen.ended[0], ValueError)
    assert any("disk full" in n for n in info.value.__notes__)
