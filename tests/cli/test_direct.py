"""A decorated script run directly ends like ``ml-experiment run``: same codes, same messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import all_runs, client, write

SCRIPT = """
import os, signal, time
from ml_experiment import job

@job
def main(how: str = "ok", n: int = 1):
    if how == "fail":
        raise ValueError(f"bad n {n}")
    if how == "ctrl-c":
        raise KeyboardInterrupt
    if how == "sigterm":  # what kill, a scheduler or a container stop sends
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    return {"n": n}

if __name__ == "__main__":
    main()
"""


def _direct(workdir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    write(workdir / "d.py", SCRIPT)
    return subprocess.run(
        [sys.executable, "d.py", *flags],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_failed_direct_run_exits_1_with_the_cause(tmp_path: Path) -> None:
    res = _direct(tmp_path, "--how", "fail", "--n", "7")
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert "ValueError: bad n 7" in res.stderr and "RunFailedError" not in res.stderr
    assert lines[-1].startswith("error: ") and lines[-1].endswith("failed: ValueError: bad n 7")
    (run,) = all_runs(client(tmp_path), "d")
    assert run.info.status == "FAILED"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "code", "line"), [("ctrl-c", 130, "interrupted"), ("sigterm", 143, "interrupted")]
)
def test_interrupted_direct_run(tmp_path: Path, how: str, code: int, line: str) -> None:
    res = _direct(tmp_path, "--how", how)
    assert res.returncode == code, res.stderr
    assert line in res.stderr.strip().splitlines()[-1]
    assert "Traceback" not in res.stderr


def test_direct_run_param_of_the_wrong_type_is_bad_input(tmp_path: Path) -> None:
    res = _direct(tmp_path, "--n", "three")
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == "error: command line: params.n: expected int, got 'three'"
    assert not (tmp_path / "mlruns.db").exists()
