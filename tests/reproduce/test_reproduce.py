"""``ml-experiment reproduce``: real runs re-run from their record, verdicts checked and stored."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import all_runs, artifact_text, run_cli, write

pytestmark = pytest.mark.slow

SKLEARN = """
import numpy as np
from sklearn.linear_model import SGDClassifier
from ml_experiment import job

SCALE = 1.0

@job
def main(alpha: float = 0.001):
    data = np.loadtxt("data.csv", delimiter=",")
    x, y = data[:, :2] * SCALE, data[:, 2]
    order = np.random.permutation(len(y))  # numpy's global generator: the job's seed seeds it
    model = SGDClassifier(alpha=alpha, random_state=int(np.random.randint(1000)))
    model.fit(x[order], y[order])
    for step in range(3):
        yield {"loss": float(np.mean(model.decision_function(x) * (step + 1)))}
    yield {"accuracy": float(model.score(x, y))}

if __name__ == "__main__":
    main()
"""

CLOCK = """
import time
from ml_experiment import job

@job
def main():
    return {"elapsed_ns": float(time.perf_counter_ns() % 1000003)}

if __name__ == "__main__":
    main()
"""

TORCH = """
import torch
from ml_experiment import job

@job
def main(lr: float = 0.1):
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(64)
    w = torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([w], lr=lr)
    for _ in range(20):
        opt.zero_grad()
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        opt.step()
    return {"mse": float(loss)}

if __name__ == "__main__":
    main()
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def tree_digest(root: Path) -> str:
    """Every file of the working tree (not .git, not the knowledge center), hashed."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith((".git/", "mlruns.db", "mlartifacts")):
            h.update(rel.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def job_file(folder: Path, name: str, script: str, **extra: Any) -> Path:
    body = {"name": name, "kind": "experiment", "seed": 7, "run": [script], **extra}
    return write(folder / f"{name}.json", json.dumps(body))


def only_run(c: Any, experiment: str) -> str:
    runs = all_runs(c, experiment)
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return str(runs[0].info.run_id)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    write(root / "train.py", SKLEARN)
    write(root / "clock.py", CLOCK)
    write(root / "fit_torch.py", TORCH)
    rows = [f"{i % 7 / 7:.3f},{i % 5 / 5:.3f},{int(i % 7 > i % 5)}" for i in range(60)]
    write(root / "data.csv", "\n".join(rows) + "\n")
    job_file(root, "sk", "train.py", data_files=["data.csv"])
    job_file(root, "clock", "clock.py")
    job_file(root, "torch", "fit_torch.py", deterministic=True)
    git(root, "init", "-q", "-b", "main")  # no .gitignore: the store lands in the tree
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "init")
    return root


def test_sklearn_run_with_uncommitted_changes_reproduces_identical(repo: Path, client_at) -> None:
    # An uncommitted change the re-run must take from the patch (else the metrics differ).
    (repo / "train.py").write_text(SKLEARN.replace("SCALE = 1.0", "SCALE = 3.0"))
    assert run_cli("run", "sk.json", cwd=repo).returncode == 0
    c = client_at(repo)
    original = only_run(c, "sk")
    assert c.get_run(original).data.tags["git.dirty"] == "true"
    before = tree_digest(repo)

    res = run_cli("reproduce", original, cwd=repo)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith(f"identical  (run {original} -> ")
    assert "6 metric values compared" in res.stdout  # 2 final values and 4 step values
    assert tree_digest(repo) == before  # the user's working tree is untouched

    rerun = next(r for r in all_runs(c, "sk") if r.info.run_id != original)
    assert rerun.data.tags["reproduction.of"] == original
    assert rerun.data.tags["reproduction.verdict"] == "identical"
    # The re-run's code record is the original's commit and patch, not its temporary folder.
    tags = c.get_run(original).data.tags
    assert rerun.data.tags["mlflow.source.git.commit"] == tags["mlflow.source.git.commit"]
    assert rerun.data.tags["git.dirty"] == "true" and "code.snapshot" not in rerun.data.tags
    patch = artifact_text(c, original, "code/uncommitted.patch")
    assert artifact_text(c, rerun.info.run_id, "code/uncommitted.patch") == patch
    report = json.loads(artifact_text(c, rerun.info.run_id, "reproduction/report.json"))
    assert report["verdict"] == "identical" and report["run_id"] == original
    tags = c.get_run(original).data.tags
    assert tags["reproduction.by"] == rerun.info.run_id
    assert tags["reproduction.verdict"] == "identical"

    # A recorded package version that is not the installed one: named in the drift.
    reqs = artifact_text(c, original, "environment/requirements.txt")
    old = next(line for line in reqs.splitlines() if line.lower().startswith("scikit-learn=="))
    c.log_text(original, reqs.replace(old, "scikit-learn==0.0.1"), "environment/requirements.txt")
    res = run_cli("reproduce", original, cwd=repo)
    assert res.returncode == 0, res.stdout + res.stderr
    installed = old.split("==")[1].split()[0]
    assert f"packages: scikit-learn: 0.0.1 -> {installed}" in res.stdout

    # The data file changed: cannot reproduce, nothing written.
    count = len(all_runs(c, "sk"))
    with open(repo / "data.csv", "a") as f:
        f.write("0.5,0.5,1\n")
    res = run_cli("reproduce", original, cwd=repo)
    assert res.returncode == 1
    assert res.stderr.strip().startswith(f"cannot reproduce: data changed: {repo / 'data.csv'} ")
    assert len(all_runs(c, "sk")) == count


def test_clock_differs_and_torch_reproduces_deterministically(repo: Path, client_at) -> None:
    assert run_cli("run", "clock.json", cwd=repo).returncode == 0
    assert run_cli("run", "torch.json", cwd=repo).returncode == 0
    c = client_at(repo)
    res = run_cli("reproduce", only_run(c, "clock"), cwd=repo)
    assert res.returncode == 1
    assert res.stdout.startswith("differs")
    assert "  elapsed_ns: " in res.stdout and "delta " in res.stdout

    torch_run = only_run(c, "torch")
    applied = c.get_run(torch_run).data.tags["ml_experiment.deterministic.applied"]
    assert "torch.use_deterministic_algorithms(True)" in applied
    assert "PYTHONHASHSEED=0" in applied
    res = run_cli("reproduce", torch_run, cwd=repo)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("identical")


def test_script_outside_git_reproduces_from_its_snapshot(tmp_path: Path, client_at) -> None:
    folder = tmp_path / "plain"
    write(folder / "clock.py", CLOCK.replace("time.perf_counter_ns() % 1000003", "len(HELPER)"))
    write(folder / "lib" / "helper.py", "VALUE = 'abc'\n")
    text = (
        (folder / "clock.py")
        .read_text()
        .replace("import time", "import time\nfrom lib.helper import VALUE as HELPER")
    )
    (folder / "clock.py").write_text(text)
    job_file(folder, "snap", "clock.py")
    env = {"GIT_CEILING_DIRECTORIES": str(tmp_path)}
    assert run_cli("run", "snap.json", cwd=folder, env=env).returncode == 0
    c = client_at(folder)
    original = only_run(c, "snap")
    assert c.get_run(original).data.tags["code.snapshot"].startswith("3 files, ")
    (folder / "lib" / "helper.py").write_text("VALUE = 'changed'\n")  # the snapshot is what ran
    res = run_cli("reproduce", original, cwd=folder, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("identical")


def test_bad_input_and_records_that_are_not_enough(repo: Path, tmp_path: Path, client_at) -> None:
    assert run_cli("run", "clock.json", cwd=repo).returncode == 0
    c = client_at(repo)
    run_id = only_run(c, "clock")

    res = run_cli("reproduce", "0" * 32, cwd=repo)
    assert res.returncode == 2
    assert res.stderr.strip().startswith(f"error: run_id: no run '{'0' * 32}' in the knowledge")
    other = tmp_path / "other"
    other.mkdir()
    run_cli("run", str(repo / "clock.json"), cwd=other)
    res = run_cli("reproduce", run_id, cwd=other)  # another knowledge center's run
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1

    c.set_tag(run_id, "mlflow.source.git.commit", "f" * 40)
    res = run_cli("reproduce", run_id, cwd=repo)
    assert res.returncode == 1
    assert (
        res.stderr.strip()
        == f"cannot reproduce: commit ffffffffffff is not in the repository {repo}"
    )

    artifacts = Path(c.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    for item in artifacts.iterdir():
        subprocess.run(["rm", "-rf", str(item)], check=True)
    res = run_cli("reproduce", run_id, cwd=repo)
    assert res.returncode == 1
    assert "has no recorded job file (config/job.json)" in res.stderr
    assert len(all_runs(c, "clock")) == 1  # nothing written by any of these


def test_patch_size_stays_flat_without_gitignore(repo: Path, monkeypatch) -> None:
    from ml_experiment.config import load_config
    from ml_experiment.execution import run_job

    monkeypatch.chdir(repo)
    from mlflow import MlflowClient

    sizes = []
    for _ in range(20):
        run_job(load_config(str(repo / "clock.json")))
    c = MlflowClient(f"sqlite:///{repo / 'mlruns.db'}")
    for run in all_runs(c, "clock"):
        names = [a.path for a in c.list_artifacts(run.info.run_id, "code")]
        sizes.append(len(names))
        assert run.data.tags["git.dirty"] == "false"
    assert sizes == [0] * 20  # no patch, no manifest: the store never enters the code record
