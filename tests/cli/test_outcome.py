"""The one mapping from outcomes to exit codes and messages (``ml-experiment`` and direct runs)."""

from __future__ import annotations

import pytest
import typer

from ml_experiment.cli._outcome import exit_code, report
from ml_experiment.exceptions import (
    ConfigError,
    ExecutionError,
    Interrupted,
    RunFailedError,
    TrackingError,
)


def _failed_run() -> RunFailedError:
    try:
        try:
            raise ValueError("bad x 7")
        except ValueError as cause:
            raise RunFailedError("job 'boom' failed: ValueError: bad x 7") from cause
    except RunFailedError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConfigError("expected int, got 'three'", source="e.yaml", field="params.n"), 2),
        (_failed_run(), 1),
        (TrackingError("cannot write to the knowledge center"), 1),
        (ExecutionError("no @job function in t.py"), 1),
        (KeyboardInterrupt(), 130),
        (Interrupted("stopped; run again with --resume", signum=15), 143),
        (Interrupted("stopped", signum=2), 130),
        (typer.BadParameter("nope"), 2),
        (ValueError("a bug"), None),
    ],
)
def test_exit_codes(exc: BaseException, code: int | None) -> None:
    assert exit_code(exc) == code


def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    exc = ConfigError("expected int,\n  got 'three'", source="e.yaml", field="params.n")
    assert report(exc) == 2
    assert capsys.readouterr().err == "error: e.yaml: params.n: expected int, got 'three'\n"


def test_failed_run_shows_the_cause_then_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ML_EXPERIMENT_FULL_ERROR", raising=False)
    assert report(_failed_run()) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "ValueError: bad x 7" in err
    assert "RunFailedError" not in err  # only the user's traceback, not ours
    assert err.splitlines()[-1] == "error: job 'boom' failed: ValueError: bad x 7"


def test_a_failed_write_while_finishing_is_a_second_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exc = _failed_run()
    exc.add_note("also: the run could not be marked FAILED: database is locked")
    assert report(exc) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[-2] == "error: job 'boom' failed: ValueError: bad x 7"
    assert lines[-1] == "also: the run could not be marked FAILED: database is locked"
    stop = Interrupted("group g stopped after 3 of 10 trials; run again with --resume", signum=15)
    stop.add_note("also: the store refused the final write")
    assert report(stop) == 143
    assert capsys.readouterr().err.splitlines() == [
        "group g stopped after 3 of 10 trials; run again with --resume",
        "also: the store refused the final write",
    ]


def test_interrupts(capsys: pytest.CaptureFixture[str]) -> None:
    assert report(KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_full_error_shows_tracebacks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ML_EXPERIMENT_FULL_ERROR", "1")
    try:
        raise TrackingError("store down")
    except TrackingError as exc:
        assert report(exc) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1] == "error: store down"
    assert report(_failed_run()) == 1
    assert "RunFailedError" in capsys.readouterr().err


def test_a_bug_is_not_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert report(ValueError("a bug")) is None
    assert capsys.readouterr().err == ""
