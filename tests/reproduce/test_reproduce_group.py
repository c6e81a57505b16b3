"""``reproduce`` of a group (replayed trials, the search itself) and against an mlflow server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import all_runs, run_cli, write
from tests.reproduce.test_reproduce import git

pytestmark = pytest.mark.slow

NOISY = """
import numpy as np
from ml_experiment import job

@job
def main(x: float = 0.0, n: int = 1):
    noise = np.random.normal(size=8)  # numpy's global generator, seeded per trial
    return {"score": float(-(x - 0.3) ** 2 + 0.01 * noise[:n].sum())}

if __name__ == "__main__":
    main()
"""


def test_group_trials_replay_and_the_search_repeats(tmp_path: Path, client_at) -> None:
    root = tmp_path / "g"
    write(root / "noisy.py", NOISY)
    group = {
        "name": "noisy",
        "kind": "group",
        "num_trials": 4,
        "sampler": "random",
        "pruner": "none",
        "seed": 11,
        "param_space": {"x": "uniform(0, 1)", "n": "range(1, 8)"},
        "metric": {"name": "score", "direction": "maximize"},
        "resources_per_worker": {"cpu": 1},
        "ray_config": {"num_cpus": 2},
        "report": False,
        "deterministic": True,
        "run": ["noisy.py"],
    }
    write(root / "group.json", json.dumps(group))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "init")
    assert run_cli("run", "group.json", "-q", cwd=root).returncode == 0
    c = client_at(root)
    (parent,) = [r for r in all_runs(c, "noisy") if "mlflow.parentRunId" not in r.data.tags]
    best = parent.data.tags["best_trial_number"]
    assert parent.data.tags["ml_experiment.deterministic"] == "true"
    trials = [r for r in all_runs(c, "noisy") if "mlflow.parentRunId" in r.data.tags]
    for trial in trials:  # applied in every worker, before each trial
        applied = trial.data.tags["ml_experiment.deterministic.applied"]
        assert applied.startswith("PYTHONHASHSEED=0, CUBLAS_WORKSPACE_CONFIG=:4096:8, torch.")

    res = run_cli("reproduce", parent.info.run_id, cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith(f"trial {best}: identical")

    res = run_cli("reproduce", parent.info.run_id, "--trials", "all", cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count(": identical") == 4
    assert res.stdout.rstrip().endswith("4/4 trials reproduced")
    replayed = [r for r in all_runs(c, "noisy") if "ml_experiment.replay_of" in r.data.tags]
    assert len(replayed) == 5 and all(
        r.data.tags["reproduction.verdict"] == "identical" for r in replayed
    )

    res = run_cli("reproduce", parent.info.run_id, "--search", cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "identical: the search proposed the same parameters for all 4 trials" in res.stdout

    res = run_cli("reproduce", parent.info.run_id, "--trials", "9", cwd=root)
    assert res.returncode == 2
    assert res.stderr.startswith("error: trials: --trials 9: no complete trial [9] in group run")


def test_reproduce_against_a_tracking_server(mlflow_server: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    root = tmp_path / "s"
    write(root / "noisy.py", NOISY)
    write(root / "exp.json", json.dumps({"name": "srv", "seed": 5, "run": ["noisy.py"]}))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "init")
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    assert run_cli("run", "exp.json", "-q", cwd=root, env=env).returncode == 0
    c = MlflowClient(mlflow_server)
    (run,) = c.search_runs([c.get_experiment_by_name("srv").experiment_id])
    res = run_cli("reproduce", run.info.run_id, "--tracking_uri", mlflow_server, cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("identical")
    assert c.get_run(run.info.run_id).data.tags["reproduction.verdict"] == "identical"
    assert not (root / "mlruns.db").exists()
