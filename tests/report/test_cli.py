"""``ml-experiment report`` through the CLI's entry point (in process: the fast lane)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.report.conftest import synth_group

from ml_experiment.cli import main


def test_report_command_writes_logs_and_prints_the_path(
    kc_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    synth = synth_group(kc_dir, name="cli", n=6)
    monkeypatch.chdir(tmp_path)
    try:
        main(["report", synth.name, "--tracking_uri", synth.uri])
    except SystemExit as exc:
        assert exc.code in (0, None)
    out = capsys.readouterr().out.strip().splitlines()
    index = tmp_path / "reports" / synth.name / "index.html"
    assert out[-1] == str(index)
    assert index.is_file() and (index.parent / "history.png").is_file()
    from mlflow.tracking import MlflowClient

    paths = {a.path for a in MlflowClient(synth.uri).list_artifacts(synth.parent_run_id, "report")}
    assert "report/index.html" in paths and "report/history.png" in paths


def test_unknown_name_exits_2_with_one_line(
    kc_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{kc_dir / 'mlruns.db'}"
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "no-such-group", "--tracking_uri", uri, "--out", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no run id or group named 'no-such-group'" in err[0]
    assert not (tmp_path / "x").exists()
