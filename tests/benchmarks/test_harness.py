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


def test_phases_targets_and_tables_from_a_groups_timings(bench, tmp_path: Path):
    # What a group writes with ML_EXPERIMENT_TIMINGS (epoch seconds), launched at t=100.
    phases = {
        "group": [100.5, 100.5],
        "store": [100.6, 101.6],
        "ray_start": [100.55, 104.0],
        "ray_wait": [102.0, 104.0],
        "first_dispatch": [104.1, 104.1],
        "trials_end": [106.0, 106.0],
        "ray_shutdown": [106.1, 107.0],
        "finish": [106.1, 108.0],
        "end": [108.0, 108.0],
        "data": [101.9, float("nan")],  # never ended (failed): left out
    }
    run = bench.Launch(["x"], tmp_path, 100.0, 108.5, phases=phases)
    ph = bench.phase_figures(run, first_trial=104.3)
    assert ph == {
        "imports": 0.5,
        "store": 1.0,
        "ray_start": 3.45,
        "ray_wait": 2.0,
        "finish": 1.9,
        "ray_shutdown": 0.9,
        "first_dispatch": 4.1,
        "first_trial": 4.3,
        "after_trials_to_return": 2.0,
        "exit": 0.5,
    }
    row = bench._startup_row(run, 104.3)
    assert row["first_trial_s"] == 4.3 and row["first_trial_from_group_s"] == 3.8
    results = {
        "overhead": {
            "ml-experiment": {"median_ms": 7.0, "command_s": 8.0, "phases": ph},
            "glue": {"median_ms": 47.0, "command_s": 16.0},
        },
        "startup": {
            "ml-experiment": {
                "repeats": 1,
                "fresh": {**row, "phases": ph},
                "existing_store": {**row, "first_trial_s": 3.6, "phases": ph},
                "warm": {**row, "first_trial_s": 1.2, "phases": ph},
                "bare_ray": {"first_trial_s": 0.9, "command_s": 1.5, "phases": {}},
            }
        },
    }
    targets = bench._targets(results)
    assert targets["command_ratio_to_glue"] == 0.5
    assert targets["command_ratio_to_glue<=0.6"] is True
    assert targets["first_trial_fresh_s<=4.0"] is False
    assert targets["first_trial_existing_store_s<=3.5"] is False
    assert targets["first_trial_warm_s<=1.5"] is True
    assert targets["first_trial_warm_over_bare_ray_s"] == 0.3
    md = bench.render_markdown({"startup": results["startup"], "targets": targets})
    assert "| store exists, running local head" in md and "`first_trial_warm_s<=1.5`: True" in md
    assert (
        "| floor: a bare Ray driver on that head (`ray.init` + one task) | 0.90 | - | 1.5 |" in md
    )
    line = bench._phase_line(ph)
    assert "Ray start 3.45" in line and "interpreter exit 0.50" in line


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
            "--trials", "4",
            "--memory-trials", "2",
            "--data-mib", "16",
            "--no-control",
            "--sample-ms", "200",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert rc == 0
    results = json.loads(out.read_text())
    assert results["meta"]["parameters"]["trials"] == 4
    for system, workers in (("ml-experiment", 2), ("glue", 1)):
        ov = results["overhead"][system]
        assert "error" not in ov, ov
        assert ov["trials"] == 4 and ov["workers"] == workers
        for key in ("total_s", "median_ms", "mean_ms", "startup_s", "command_s"):
            assert ov[key] > 0, (system, key, ov)
        assert ov["command_s"] > ov["startup_s"] + ov["total_s"] * 0.99
    phases = results["overhead"]["ml-experiment"]["phases"]
    for key in ("imports", "store", "study", "capture", "ray_start", "first_dispatch", "exit"):
        assert phases[key] >= 0, (key, phases)
    assert phases["first_dispatch"] <= phases["first_trial"]
    mem = results["memory"]["ml-experiment"]
    assert "error" not in mem, mem
    assert mem["data_mib"] == 16 and mem["trials"] == 2  # one per worker: both share the array
    assert mem["zero_copy_trials"] == 2
    assert mem["samples"] > 0
    assert 0 < mem["peak_total_gib"] < 8
    assert mem["peak_rss_gib"] >= mem["peak_pss_gib"] > 0
    assert mem["max_processes"] > 1  # the driver's Ray processes are counted too
    assert {p["process"] for p in mem["peak_processes"]} >= {"ml-experiment"}
    assert "ratio_to_glue" in results["targets"]
    assert "command_ratio_to_glue<=0.6" in results["targets"]
