"""benchmarks/report_bench.py runs end to end on a tiny group (its figures are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_report_bench_measures_a_small_group(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "report_bench.py"), "--trials", "8",
         "--steps", "4", "--out", str(out), "--keep", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = json.loads(out.read_text())
    assert result["trials"] == 8 and result["pngs"] == 7
    assert result["build_s"] > 0 and result["command_s"] > 0
    assert 4 < result["html_mb"] < 10  # plotly.js inline (~4.8 MB) and not much more
    assert (tmp_path / "report-8" / "index.html").is_file()
