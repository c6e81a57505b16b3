"""``ml-experiment package RUN_ID``: a build context that re-creates a recorded run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import EXAMPLES, all_runs, client, run_cli

pytestmark = pytest.mark.slow

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    """A quickstart run made here, its code a git commit plus an uncommitted change."""
    proj = tmp_path_factory.mktemp("pkg") / "proj"
    shutil.copytree(EXAMPLES / "quickstart", proj)
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=proj, check=True, env=env)
    subprocess.run(["git", "add", "."], cwd=proj, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=proj, check=True, env=env)
    script = proj / "train_svm.py"  # the patch: what ran differs from the commit
    script.write_text(script.read_text().replace("test_size=0.5", "test_size=0.4"))
    assert "test_size=0.4" in script.read_text()
    done = run_cli("run", "svm_experiment.yaml", "-q", cwd=proj)
    assert done.returncode == 0, done.stderr
    (run,) = all_runs(client(proj), "SVM #1")
    return proj, run.info.run_id, run.data.metrics["val_accuracy"]


def _offline_env(**extra: str) -> dict[str, str]:
    """No pip configuration, index or find-links of this machine: only what the context has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "MLFLOW_"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", **extra}


def _metric(folder: Path, experiment: str) -> tuple[float, dict[str, Any]]:
    (run,) = all_runs(client(folder), experiment)
    assert run.info.status == "FINISHED"
    return run.data.metrics["val_accuracy"], dict(run.data.params)


def test_package_without_an_engine_writes_a_complete_context(
    tmp_path: Path, recorded: tuple[Path, str, float]
) -> None:
    proj, run_id, accuracy = recorded
    ctx = tmp_path / "ctx"
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    done = run_cli("package", run_id, "--out", str(ctx), cwd=proj, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(ctx.resolve())
    # ml-experiment is an editable install here: a warning, and a wheel built from its source.
    assert "warning: not installable from an index as recorded" in done.stderr
    assert "ml-experiment" in done.stderr
    assert "not pinned by digest" in done.stderr
    assert {p.name for p in ctx.iterdir()} == {
        "Dockerfile", "code", "entrypoint.sh", "job.json", "requirements.lock", "wheelhouse",
    }  # fmt: skip
    assert "test_size=0.4" in (ctx / "code" / "train_svm.py").read_text()  # commit + patch
    assert "--require-hashes" in (ctx / "Dockerfile").read_text()
    assert "SOURCE_DATE_EPOCH=" in (ctx / "Dockerfile").read_text()
    lock = (ctx / "requirements.lock").read_text()
    assert "scikit-learn==" in lock.replace("scikit_learn==", "scikit-learn==")
    assert "ml_experiment==0.2.0 --hash=sha256:" in lock

    # Complete: a fresh virtual environment installs it offline, and the entrypoint re-runs it.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-index", "--find-links",
         str(ctx / "wheelhouse"), "--require-hashes", "-r", str(ctx / "requirements.lock")],
        env=_offline_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    out = tmp_path / "out"
    out.mkdir()
    env_run = _offline_env(PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
    rerun = subprocess.run(
        ["sh", str(ctx / "entrypoint.sh"), "-q"], cwd=out, env=env_run, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    value, params = _metric(out, "SVM #1")
    assert value == accuracy
    assert params["C"] == "10"


def test_package_build_runs_offline_and_reproduces_the_metrics(
    tmp_path: Path, recorded: tuple[Path, str, float], base_image: str, engine: Any,
    docker_env: dict[str, str],
) -> None:  # fmt: skip
    proj, run_id, accuracy = recorded
    ctx = tmp_path / "ctx"
    done = run_cli(
        "package", run_id, "--out", str(ctx), "--build", "--base", base_image,
        cwd=proj, env=docker_env, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    path, image_id = done.stdout.strip().splitlines()[-2:]
    assert path == str(ctx.resolve()) and image_id.startswith("sha256:")
    base_id = engine.images.get(base_image).id
    assert f"FROM {base_id}" in (ctx / "Dockerfile").read_text()  # no registry digest: its id
    out = tmp_path / "out"
    out.mkdir()
    logs = engine.containers.run(
        image_id, ["-q"], network_mode="none", remove=True, stdout=True, stderr=True,
        volumes={str(out): {"bind": "/out", "mode": "rw"}},
    )  # fmt: skip
    value, _ = _metric(out, "SVM #1")
    assert value == accuracy, logs.decode(errors="replace")[-2000:]


def test_package_of_an_unknown_run_is_bad_input(tmp_path: Path) -> None:
    done = run_cli("package", "0" * 32, "--out", str(tmp_path / "ctx"), cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "no run" in line
    assert not (tmp_path / "ctx").exists()
