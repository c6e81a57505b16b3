"""Smoke test of benchmarks/run_benchmarks.py: tiny sizes, ml-experiment and the glue baseline.

Ray Tune is left out (slow to start, and ``ray[tune]`` is not a test dependency); the figures are
not checked against targets here (benchmarks are never timed in unit tests), only for sanity.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "run_benchmarks.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("mlx_run_benchmarks", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_figures_from_trial_times(bench):
    T = bench.TrialTimes
    # Two workers, trials of 1 s back to back from t=10; persisted 10 ms after each ends.
    trials = [T(10 + i // 2, 11 + i // 2, 11.01 + i // 2 + 0.001 * (i % 2)) for i in range(6)]
    ov = bench.overhead_figures(trials)
    assert ov["trials"] == 6
    assert ov["total_s"] == pytest.approx(3.011, abs=1e-3)
    assert ov["mean_ms"] == pytest.approx(3011 / 6, abs=0.1)
    eff = bench.efficiency_figures(trials, workers=2, cpu_s=1.0)
    assert eff["efficiency"] == pytest.approx(1.0)
    assert eff["span_s"] == pytest.approx(3.0)
    # A 1 s hole on one worker: 6 s of trials over 2 workers in a 4 s span.
    trials[-1] = T(13, 14, 14.01)
    holed = bench.efficiency_figures(trials, workers=2, cpu_s=1.0)
    assert holed["efficiency"] == pytest.approx(0.75)


def test_import_benchmark_reports_its_figures(bench):
    # Structure only: the time is a figure for benchmarks/README.md, never a test's threshold.
    imp = bench.bench_import(1)
    assert imp["runs"] == 1 and imp["best_s"] == imp["median_s"] > 0
    assert imp["heavy_modules"] == []
    targets = bench._targets({"import": {"ml-experiment": imp}})
    assert targets["import_no_heavy_module"] is True and "import_s<0.3" in targets


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_run_ml_experiment_and_glue(bench, tmp_path: Path):
    out = tmp_path / "results.json"
    rc = bench.main(
        [
            "--quick",
            "--only", "overhead",
            "--only", "memory",
            "--systems", "ml-experiment,glue",
            "--trials", "10",
            "--memory-trials", "4",
            "--data-mib", "16",
            "--no-control",
            "--sample-ms", "200",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert rc == 0
    results = json.loads(out.read_text())
    assert results["meta"]["parameters"]["trials"] == 10
    for system, workers in (("ml-experiment", 2), ("glue", 1)):
        ov = results["overhead"][system]
        assert "error" not in ov, ov
        assert ov["trials"] == 10 and ov["workers"] == workers
        for key in ("total_s", "median_ms", "mean_ms", "startup_s", "command_s"):
            assert ov[key] > 0, (system, key, ov)
        assert ov["command_s"] > ov["startup_s"] + ov["total_s"] * 0.99
    mem = results["memory"]["ml-experiment"]
    assert "error" not in mem, mem
    assert mem["data_mib"] == 16 and mem["trials"] == 4
    assert mem["zero_copy_trials"] == 4
    assert mem["samples"] > 0
    assert 0 < mem["peak_total_gib"] < 8
    assert mem["peak_rss_gib"] >= mem["peak_pss_gib"] > 0
    assert mem["max_processes"] > 1  # the driver's Ray processes are counted too
    assert {p["process"] for p in mem["peak_processes"]} >= {"ml-experiment"}
    assert "ratio_to_glue" in results["targets"]
