"""Groups through the installed command: the thesis's params + param_space, and running twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import all_runs, client, run_cli, write

pytestmark = pytest.mark.slow

SCRIPT = """
from ml_experiment import job

@job
def main(C: float = 1.0, kernel: str = "rbf"):
    return {"score": -abs(C - 3.0)}
"""


def job_file(folder: Path) -> Path:
    write(folder / "svm.py", SCRIPT)
    # The thesis's manual (user guide 3.1) fixes C in params and searches it in param_space.
    job = {
        "name": "svm", "kind": "group", "num_trials": 3, "sampler": "random", "seed": 5,
        "params": {"C": 1.0, "kernel": "poly"}, "param_space": {"C": "loguniform(0.01, 100)"},
        "metric": {"name": "score", "direction": "maximize"}, "resources_per_worker": {"cpu": 1},
        "ray_config": {"num_cpus": 2}, "report": False, "run": ["svm.py"],
    }  # fmt: skip
    (folder / "svm.json").write_text(json.dumps(job))
    return folder / "svm.json"


def test_searched_value_wins_and_a_finished_group_runs_again_as_a_new_study(tmp_path: Path) -> None:
    job = job_file(tmp_path)
    first = run_cli("run", str(job), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines() == [
        "'C' is in params and in param_space: the searched value is used"
    ]
    runs = all_runs(client(tmp_path), "svm")
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(trials) == 3
    assert all(r.data.params["kernel"] == "poly" for r in trials)
    assert len({r.data.params["C"] for r in trials}) == 3 and "1.0" not in {
        r.data.params["C"] for r in trials
    }
    second = run_cli("run", str(job), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "group 'svm' already ran (study 'svm'): starting study 'svm#2'" in second.stderr
    assert "group 'svm' (study 'svm#2'): 3 trials, 3 complete" in second.stdout
    parents = [
        r for r in all_runs(client(tmp_path), "svm") if "mlflow.parentRunId" not in r.data.tags
    ]
    assert sorted(r.info.run_name for r in parents) == ["svm", "svm#2"]
    resumed = run_cli("run", str(job), "--resume", cwd=tmp_path)
    assert resumed.returncode == 2
    assert resumed.stderr.strip().splitlines() == [
        f"error: {job}: name: --resume: there is no unfinished study named 'svm' to resume; "
        "run without --resume to start one"
    ]
