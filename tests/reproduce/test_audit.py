"""``ml-experiment audit``: the checklist graded from real runs in a real knowledge center."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import artifact_paths, artifact_text, client, run_cli, write

from ml_experiment.exceptions import ConfigError
from ml_experiment.reproduce import audit_run
from ml_experiment.tracking.record import (
    AUDIT_REPORT,
    TAG_AUDIT_RESULT,
    TAG_AUDIT_SCORE,
    TAG_REPRODUCED_BY,
    TAG_VERDICT,
    TEXT_FILES,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

TRAIN = """
    import csv
    import random

    import numpy as np

    from ml_experiment import job


    @job
    def main(C: float = 1.0, kernel: str = "rbf"):
        rows = list(csv.reader(open("data.csv")))
        noise = np.random.normal(0, 0.01) + random.random() * 0.01
        print(f"{len(rows)} rows, C={C}")
        return {"val_accuracy": 0.9 + noise, "test_accuracy": 0.88 + noise / C}


    if __name__ == "__main__":
        main()
    """


@pytest.fixture
def git_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No user or system git configuration; a fixed identity for the commits.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR", "GIT_COMMITTER"):
        monkeypatch.setenv(f"{var}_NAME", "Test")
        monkeypatch.setenv(f"{var}_EMAIL", "test@example.com")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def project(root: Path, *, seed: int | None = 7, script: str = TRAIN) -> Path:
    """A committed git project: a script, its data file and a job file."""
    write(root / "train.py", script)
    write(root / "data.csv", "1,2\n3,4\n")
    job: dict[str, Any] = {
        "name": "audited",
        "kind": "experiment",
        "params": {"C": 2.0, "kernel": "linear"},
        "data_files": ["data.csv"],
        "run": ["train.py"],
    }
    if seed is not None:
        job["seed"] = seed
    (root / "job.json").write_text(json.dumps(job))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "train.py", "data.csv", "job.json")
    git(root, "commit", "-q", "-m", "first")
    return root / "job.json"


def run(job_file: Path) -> str:
    from ml_experiment.config import load_config
    from ml_experiment.execution import run_job

    return str(run_job(load_config(job_file))[0].run_id)


def dump(db: Path) -> list[str]:
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as conn:
        return list(conn.iterdump())


def grades(audit: Any) -> dict[str, str]:
    return {i.name: i.grade for i in audit.items}


def expected_stochasticity(c: Any, run_id: str) -> str:
    """WARN when the run seeded torch: the job's seed seeds torch whenever the process (or a Ray
    worker) has imported it, as earlier tests may have; seeded torch without the deterministic
    switches is a WARN, rightly."""
    return "WARN" if "seed.torch" in c.get_run(run_id).data.tags else "PASS"


def expected_software() -> str:
    """WARN when this test environment has packages from local folders (an editable install)."""
    from ml_experiment.reproduce._read import local_origin, packages
    from ml_experiment.tracking.environment import requirements_txt

    local = [n for n, (_, o) in packages(requirements_txt()).items() if local_origin(o)]
    return "WARN" if local else "PASS"


def test_full_run_passes_and_stores_its_result(workdir: Path, git_env: None) -> None:
    run_id = run(project(workdir))
    audit = audit_run(run_id)
    software = expected_software()
    torch_seeded = expected_stochasticity(client(workdir), run_id) == "WARN"
    assert grades(audit) == {
        "dataset": "PASS",
        "code version": "PASS",
        "parameters": "PASS",
        "evaluation": "PASS",
        "stochasticity": "WARN" if torch_seeded else "PASS",
        "software environment": software,  # e.g. ml-experiment installed editable here
        "hardware": "PASS",
        "logs": "PASS",
        "reproduction": "WARN",  # nothing has re-run it yet
    }
    items = {i.name: i for i in audit.items}
    assert "data/files.json: 1 file(s) with sha256" in items["dataset"].evidence
    assert "git.dirty = false" in items["code version"].evidence
    assert "test (test_accuracy) separate from validation (val_accuracy)" in (
        items["evaluation"].evidence
    )
    assert "seed = 7" in items["stochasticity"].evidence
    assert items["reproduction"].fix == f"ml-experiment reproduce {run_id}"
    if software == "WARN":
        assert "ml-experiment" in items["software environment"].evidence
        assert "not reinstallable" in items["software environment"].fix
    assert audit.result == "pass"

    c = client(workdir)
    tags = c.get_run(run_id).data.tags
    assert tags[TAG_AUDIT_SCORE] == audit.score and tags[TAG_AUDIT_RESULT] == "pass"
    stored = json.loads(artifact_text(c, run_id, AUDIT_REPORT))
    assert stored["score"] == audit.score and len(stored["items"]) == 9

    # What `reproduce` writes on the original when the re-run matched it.
    c.set_tag(run_id, TAG_VERDICT, "identical")
    c.set_tag(run_id, TAG_REPRODUCED_BY, "f" * 32)
    again = audit_run(run_id)
    assert grades(again)["reproduction"] == "PASS"
    assert again.score == f"{9 - (software == 'WARN') - torch_seeded}/9"
    c.set_tag(run_id, TAG_VERDICT, "differs")
    assert grades(audit_run(run_id, store=False))["reproduction"] == "FAIL"


def test_dirty_tree_with_and_without_its_patch(workdir: Path, git_env: None) -> None:
    job_file = project(workdir)
    with (workdir / "train.py").open("a") as f:
        f.write("# an uncommitted change\n")
    run_id = run(job_file)
    c = client(workdir)
    assert TEXT_FILES["patch"] in artifact_paths(c, run_id)
    code = {i.name: i for i in audit_run(run_id, store=False).items}["code version"]
    assert code.grade == "PASS" and "git.dirty = true" in code.evidence

    # The patch is gone from the artifact store: the uncommitted changes are lost.
    root = Path(c.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    (root / TEXT_FILES["patch"]).unlink()
    audit = audit_run(run_id)
    code = {i.name: i for i in audit.items}["code version"]
    assert code.grade == "FAIL"
    assert "git.dirty = true, but no code/uncommitted.patch" in code.evidence
    assert audit.result == "fail"
    assert c.get_run(run_id).data.tags[TAG_AUDIT_RESULT] == "fail"


UNSEEDED = """
    import random

    from ml_experiment import job


    @job
    def main(C: float = 1.0, kernel: str = "rbf"):
        return {"val_accuracy": random.random()}
    """


def test_unseeded_and_script_seeded_runs(workdir: Path, git_env: None) -> None:
    job_file = project(workdir, seed=None, script=UNSEEDED)
    item = {i.name: i for i in audit_run(run(job_file), store=False).items}["stochasticity"]
    assert item.grade == "FAIL"
    assert "no seed recorded" in item.evidence and "seed:" in item.fix

    # The script seeds numpy itself: recorded, but the other generators stay unseeded.
    write(
        workdir / "train.py", TRAIN.replace("rows = list", "np.random.seed(3)\n        rows = list")
    )
    item = {i.name: i for i in audit_run(run(job_file), store=False).items}["stochasticity"]
    assert item.grade == "WARN"
    assert "seeded by the script only: seed.numpy = 3" in item.evidence


def test_plain_mlflow_run_says_what_is_missing(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    uri = f"sqlite:///{workdir / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    experiment_id = mlflow.MlflowClient(uri).create_experiment("plain")
    with mlflow.start_run(experiment_id=experiment_id) as active:
        mlflow.log_params({"alpha": 0.1, "random_state": 0})
        mlflow.log_metric("rmse", 0.5)
    audit = audit_run(active.info.run_id, tracking_uri=uri)
    assert grades(audit) == {
        "dataset": "WARN",
        "code version": "FAIL",
        "parameters": "WARN",
        "evaluation": "PASS",
        "stochasticity": "WARN",  # a seed-like param, but nothing says what it seeded
        "software environment": "FAIL",
        "hardware": "FAIL",
        "logs": "FAIL",
        "reproduction": "WARN",
    }
    items = {i.name: i for i in audit.items}
    assert "random_state" in items["stochasticity"].evidence
    assert items["hardware"].evidence == "no hw.* tags (CPU, memory, GPUs)"
    assert "no environment/requirements.txt" in items["software environment"].evidence
    assert all(i.fix for i in audit.items if i.grade != "PASS")
    assert audit.score == "1/9" and audit.result == "fail"


def test_unknown_run_and_missing_store_are_bad_input(workdir: Path) -> None:
    with pytest.raises(ConfigError, match="no knowledge center at"):
        audit_run("0" * 32)
    assert not (workdir / "mlruns.db").exists()  # nothing written


@pytest.mark.slow
def test_audit_command(workdir: Path, git_env: None) -> None:
    run_id = run(project(workdir))
    c = client(workdir)

    res = run_cli("audit", run_id, cwd=workdir)
    assert res.returncode == 0, res.stderr
    assert "PASS  code version" in res.stdout and "fix: ml-experiment reproduce" in res.stdout
    assert "score " in res.stdout.splitlines()[-1]

    # Verified by a real re-run: every item passes (but an editable install here).
    res = run_cli("reproduce", run_id, cwd=workdir)
    assert res.returncode == 0 and res.stdout.startswith("identical"), res.stdout + res.stderr
    res = run_cli("audit", run_id, "--json", "--no-log", cwd=workdir)
    data = json.loads(res.stdout)
    assert data["run_id"] == run_id and data["result"] == "pass"
    software = expected_software()
    stochasticity = expected_stochasticity(c, run_id)
    expected = {"software environment": software, "stochasticity": stochasticity}
    assert {i["name"]: i["grade"] for i in data["items"]} == {
        name: expected.get(name, "PASS") for name in [i["name"] for i in data["items"]]
    }
    warns = (software == "WARN") + (stochasticity == "WARN")
    assert data["score"] == f"{9 - warns}/9"

    # A failing item: exit 1.
    root = Path(c.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    (root / TEXT_FILES["console"]).unlink()
    res = run_cli(
        "audit", run_id, "--tracking-uri", f"sqlite:///{workdir / 'mlruns.db'}", cwd=Path("/")
    )
    assert res.returncode == 1 and "FAIL  logs" in res.stdout

    before = dump(workdir / "mlruns.db")
    res = run_cli("audit", "0" * 32, cwd=workdir)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"error: run_id: no run '{'0' * 32}' in the knowledge center "
        f"sqlite:///{workdir / 'mlruns.db'}"
    ]
    assert dump(workdir / "mlruns.db") == before  # opening the store may touch pages, not rows


@pytest.mark.slow
def test_group_trial_is_graded_with_its_parents_record(
    workdir: Path, git_env: None, ray_local: None
) -> None:
    from ml_experiment.config import load_config
    from ml_experiment.execution import run_job

    write(
        workdir / "obj.py",
        "from ml_experiment import job\n@job\ndef main(x=0.0):\n    return {'val_y': x * x}\n",
    )
    job = {
        "name": "audited-group",
        "kind": "group",
        "report": False,
        "num_trials": 2,
        "sampler": "random",
        "seed": 5,
        "param_space": {"x": "uniform(-1, 1)"},
        "metric": {"name": "val_y", "direction": "minimize"},
        "run": ["obj.py"],
    }
    (workdir / "g.json").write_text(json.dumps(job))
    parent = str(run_job(load_config(workdir / "g.json"))[0].run_id)
    c = client(workdir)
    trial = c.search_runs(
        [c.get_run(parent).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
    )[0].info.run_id

    items = {i.name: i for i in audit_run(parent, store=False).items}
    assert items["stochasticity"].grade == expected_stochasticity(c, parent)
    assert "the group's seed = 5" in items["stochasticity"].evidence
    assert items["code version"].grade == "PASS"  # the snapshot, on the parent

    items = {i.name: i for i in audit_run(trial, store=False).items}
    on_parent = f"(on the parent run {parent})"
    for name in ("code version", "parameters", "hardware"):
        assert items[name].grade == "PASS" and items[name].evidence.endswith(on_parent), name
    assert items["software environment"].grade == expected_software()
    assert items["stochasticity"].grade == expected_stochasticity(c, trial)
    assert "seed = " in items["stochasticity"].evidence
