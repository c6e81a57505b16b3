"""``ml-experiment diff``: two real runs compared; also audit and diff against an ``mlflow server``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import EXAMPLES, artifact_text, client, run_cli, write

from ml_experiment.exceptions import ConfigError
from ml_experiment.reproduce import diff_runs
from ml_experiment.tracking.record import TEXT_FILES

SCRIPT = """
    import numpy as np

    from ml_experiment import job


    @job
    def main(C: float = 1.0, kernel: str = "rbf"):
        return {"score": float(np.random.rand() > -1)}  # the same whatever C is


    if __name__ == "__main__":
        main()
    """


def job_file(root: Path) -> Path:
    write(root / "train.py", SCRIPT)
    path = root / "job.json"
    path.write_text(
        json.dumps(
            {
                "name": "compared",
                "kind": "experiment",
                "seed": 1,
                "params": {"C": 1.0, "kernel": "rbf"},
                "run": ["train.py"],
            }
        )
    )
    return path


def run(path: Path, **params: Any) -> str:
    from ml_experiment.config import load_config
    from ml_experiment.execution import run_job

    config = load_config(path, {"params": params} if params else None)
    return str(run_job(config)[0].run_id)


def set_requirement(workdir: Path, run_id: str, name: str, version: str) -> str:
    """Change one package's version in a run's recorded requirements; return the old version."""
    c = client(workdir)
    text = artifact_text(c, run_id, TEXT_FILES["requirements"])
    lines = text.splitlines()
    (i,) = [i for i, line in enumerate(lines) if line.lower().startswith(f"{name}==")]
    old = lines[i].split("==")[1].split()[0]
    lines[i] = f"{name}=={version}"
    root = Path(c.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    (root / TEXT_FILES["requirements"]).write_text("\n".join(lines) + "\n")
    return old


def differing(diff: Any) -> set[tuple[str, str]]:
    return {(r.section, r.key) for r in diff.shown()}


def test_one_param_and_one_package_differ(workdir: Path) -> None:
    path = job_file(workdir)
    # The first run of a process records the environment before threadpoolctl's import sets
    # KMP_DUPLICATE_LIB_OK; the runs compared here are later ones.
    run(path)
    a, b = run(path), run(path, C=3.0)
    old = set_requirement(workdir, b, "numpy", "0.0.1")

    diff = diff_runs(a, b)
    # duration_s is the run's own timing: it always differs.
    assert differing(diff) == {("params", "C"), ("packages", "numpy"), ("metrics", "duration_s")}
    rows = {(r.section, r.key): r for r in diff.rows}
    assert (rows["params", "C"].a, rows["params", "C"].b) == ("1.0", "3.0")
    assert (rows["packages", "numpy"].a, rows["packages", "numpy"].b) == (old, "0.0.1")
    assert rows["params", "kernel"].same and diff.code_diff == ""
    assert {k for k, r in rows.items() if r.section == "determinism"} >= {("determinism", "seed")}

    data = diff.to_dict()
    assert data["sections"]["params"] == [{"key": "C", "a": "1.0", "b": "3.0"}]
    assert "kernel" in {r["key"] for r in diff.to_dict(show_all=True)["sections"]["params"]}


def test_code_states_differ(workdir: Path) -> None:
    path = job_file(workdir)  # not in git: the code is the snapshot
    a = run(path)
    write(workdir / "train.py", SCRIPT.replace("np.random.rand() > -1", "np.random.rand() > -2"))
    b = run(path)
    diff = diff_runs(a, b)
    assert f"--- {a[:8]}/train.py" in diff.code_diff
    assert '-    return {"score": float(np.random.rand() > -1)}' in diff.code_diff
    assert '+    return {"score": float(np.random.rand() > -2)}' in diff.code_diff
    assert "job.json" not in diff.code_diff


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_code_diff_of_two_commits_and_a_patch(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(workdir))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR", "GIT_COMMITTER"):
        monkeypatch.setenv(f"{var}_NAME", "Test")
        monkeypatch.setenv(f"{var}_EMAIL", "test@example.com")

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=workdir, check=True, capture_output=True)

    path = job_file(workdir)
    git("init", "-q", "-b", "main")
    git("add", "train.py", "job.json")
    git("commit", "-q", "-m", "v1")
    a = run(path)
    write(workdir / "train.py", SCRIPT.replace("> -1", "> -2"))
    git("commit", "-q", "-am", "v2")
    with (workdir / "train.py").open("a") as f:
        f.write("# not committed\n")
    b = run(path)

    diff = diff_runs(a, b)
    rows = {(r.section, r.key): r for r in diff.rows}
    assert not rows["code", "commit"].same and rows["code", "dirty"].b == "true"
    assert '-    return {"score": float(np.random.rand() > -1)}' in diff.code_diff  # git diff
    assert f"+++ {b[:8]}/code/uncommitted.patch" in diff.code_diff
    assert "++# not committed" in diff.code_diff  # the patch's own added line, added


def test_bad_input(workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from ml_experiment.config import load_config
    from ml_experiment.execution import run_job

    a = run(job_file(workdir))
    with pytest.raises(ConfigError, match="no run '"):
        diff_runs(a, "0" * 32)
    other = tmp_path_factory.mktemp("other")
    config = load_config(job_file(other), {"tracking_uri": f"sqlite:///{other / 'kc.db'}"})
    b = str(run_job(config)[0].run_id)
    with pytest.raises(ConfigError, match=f"no run '{b}' in the knowledge center sqlite:///"):
        diff_runs(a, b)  # b is in another store


@pytest.mark.slow
def test_diff_command(workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from ml_experiment.config import load_config
    from ml_experiment.execution import run_job

    path = job_file(workdir)
    a, b = run(path), run(path, C=3.0)
    res = run_cli("diff", a, b, "--json", cwd=workdir)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["differ"] and data["sections"]["params"] == [{"key": "C", "a": "1.0", "b": "3.0"}]

    res = run_cli("diff", a, b, "--all", cwd=workdir)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    (c_row,) = [line for line in lines if "│ C " in line]
    assert "1.0" in c_row and "3.0" in c_row
    assert any("kernel" in line and line.count("rbf") == 2 for line in lines)  # --all: equal too

    # A run of another knowledge center: bad input, one line.
    other = tmp_path_factory.mktemp("other")
    config = load_config(job_file(other), {"tracking_uri": f"sqlite:///{other / 'kc.db'}"})
    c = str(run_job(config)[0].run_id)
    res = run_cli("diff", a, c, cwd=workdir)
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"error: run_id: no run '{c}' in the knowledge center sqlite:///{workdir / 'mlruns.db'}"
    )


# -- against an mlflow server (the mlflow_server fixture of tests/conftest.py) ---------------
@pytest.mark.slow
def test_audit_and_diff_on_a_tracking_server(mlflow_server: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    cwd = tmp_path / "work"
    shutil.copytree(EXAMPLES / "quickstart", cwd)  # outside git: the code is snapshotted
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    for params in ("{}", "{C: 3}"):
        res = run_cli("run", "svm_experiment.yaml", "--params", params, "-q", cwd=cwd, env=env)
        assert res.returncode == 0, res.stderr
    c = MlflowClient(mlflow_server)
    runs = c.search_runs(
        [c.get_experiment_by_name("SVM #1").experiment_id], order_by=["start_time"]
    )
    a, b = (r.info.run_id for r in runs)

    res = run_cli("audit", a, "--json", "--tracking_uri", mlflow_server, cwd=cwd)
    assert res.returncode == 0, res.stderr
    grades = {i["name"]: i["grade"] for i in json.loads(res.stdout)["items"]}
    assert grades["code version"] == grades["logs"] == grades["hardware"] == "PASS"
    assert grades["dataset"] == "WARN"  # the example loads iris itself: nothing identifies it
    assert c.get_run(a).data.tags["audit.result"] == "pass"
    assert json.loads(artifact_text(c, a, "audit/report.json"))["run_id"] == a

    res = run_cli("diff", a, b, "--json", "--tracking-uri", mlflow_server, cwd=cwd)
    assert res.returncode == 0, res.stderr
    sections = json.loads(res.stdout)["sections"]
    assert sections["params"] == [{"key": "C", "a": "10", "b": "3"}]
    assert "val_accuracy" in {r["key"] for r in sections["metrics"]}
    assert "code" not in sections and "packages" not in sections

    res = run_cli("audit", "0" * 32, "--tracking_uri", mlflow_server, cwd=cwd)
    assert res.returncode == 2 and res.stderr.count("\n") == 1
