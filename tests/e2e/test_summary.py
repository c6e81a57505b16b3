"""What a person sees at the end of a run: a summary, trial output by trial, no library chatter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.conftest import run_cli, write

pytestmark = pytest.mark.slow

SCRIPT = """
from ml_experiment import Trial, job

@job
def main(x: float = 0.5):
    n = Trial.get_current().number
    print(f"evaluating x={x:.3f}", flush=True)
    if n == 1:
        raise ValueError("x is out of range")
    return {"score": x}
"""

CHATTER = ("execute_trial pid=", "Token authentication", "INFO mlflow", "repeated", "(raylet)")


def group(folder: Path) -> Path:
    write(folder / "objective.py", SCRIPT)
    job = {
        "name": "search", "kind": "group", "num_trials": 3, "sampler": "random", "seed": 3,
        "param_space": {"x": "uniform(0, 1)"}, "metric": {"name": "score", "direction": "maximize"},
        "resources_per_worker": {"cpu": 1}, "ray_config": {"num_cpus": 2}, "run": ["objective.py"],
    }  # fmt: skip
    (folder / "g.json").write_text(json.dumps(job))
    return folder / "g.json"


def test_group_summary_and_trial_lines_without_library_chatter(tmp_path: Path) -> None:
    res = run_cli("run", str(group(tmp_path)), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for text in CHATTER:
        assert text not in out + res.stderr, text
    trial_lines = [line for line in out.splitlines() if line.startswith("[trial ")]
    assert sorted(trial_lines) == sorted(
        re.findall(r"^\[trial [012]\] evaluating x=\d\.\d{3}$", out, flags=re.M)
    )
    assert len(trial_lines) == 3
    summary = out[out.index("group 'search'") :].splitlines()
    assert summary[0].startswith("group 'search': 3 trials, 2 complete, 0 pruned, 1 failed in ")
    assert re.fullmatch(r"best trial [02]: score = [\d.]+", summary[1])
    assert re.fullmatch(r"  x=[\d.]+", summary[2])
    assert summary[3:5] == ["failed trials:", "  trial 1: ValueError: x is out of range"]
    parent = re.fullmatch(r"parent run ([0-9a-f]{32})", summary[5])
    assert parent is not None
    run_id = parent.group(1)
    assert summary[6] == "report: reports/search/index.html"
    assert (tmp_path / "reports" / "search" / "index.html").is_file()
    assert summary[7] == f"look further: ml-experiment ui  |  ml-experiment report {run_id}"


def test_quiet_shows_only_the_summary(tmp_path: Path) -> None:
    res = run_cli("run", str(group(tmp_path)), "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("group 'search': 3 trials")
    assert "[trial" not in res.stdout and res.stderr == ""


def test_experiment_summary(tmp_path: Path) -> None:
    write(
        tmp_path / "train.py",
        """
        from ml_experiment import job

        @job
        def main(C: float = 1.0):
            print("training", flush=True)
            return {"val_accuracy": 0.96, "loss": 0.125}
        """,
    )
    res = run_cli("run", "train.py", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "training"
    head = re.fullmatch(r"run ([0-9a-f]{32}) of 'train': FINISHED in \d+\.\d s", lines[1])
    assert head is not None
    assert lines[2:4] == ["  val_accuracy = 0.96", "  loss = 0.125"]
    assert lines[4] == f"look further: ml-experiment ui  |  ml-experiment report {head.group(1)}"
    for text in CHATTER:
        assert text not in res.stdout + res.stderr, text
    # -v shows the libraries' own lines (here: MLflow creating the new store's tables, which it
    # does where no empty store of this MLflow release was kept yet).
    empty_cache = {"ML_EXPERIMENT_CACHE_DIR": str(tmp_path / "cache")}
    res = run_cli(
        "run", "train.py", "-v", "--tracking_uri", "sqlite:///other.db", cwd=tmp_path,
        env=empty_cache,
    )  # fmt: skip
    assert res.returncode == 0 and "INFO mlflow" in res.stderr
