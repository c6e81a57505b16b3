"""Experiments end to end through the installed ``ml-experiment`` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import (
    EXAMPLES,
    all_runs,
    artifact_paths,
    artifact_text,
    client,
    run_cli,
    write,
)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the quickstart in its own git repository with one commit and one local change."""
    proj = tmp_path / "proj"
    shutil.copytree(EXAMPLES / "quickstart", proj)
    write(
        proj / "helper_child.py",
        """
        import subprocess, sys
        def shout():
            subprocess.run([sys.executable, "-c", "print('child process says hi')"], check=True)
        """,
    )
    script = proj / "train_svm.py"
    script.write_text(
        script.read_text().replace(
            "    np.random.seed(SEED)\n",
            "    np.random.seed(SEED)\n    import helper_child; helper_child.shout()\n"
            "    import sys; print('to stderr', file=sys.stderr)\n",
        )
    )
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=proj, check=True, env=env)
    subprocess.run(["git", "add", "."], cwd=proj, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=proj, check=True, env=env)
    (proj / "notes.txt").write_text("uncommitted change\n")
    return proj


def _only_run(workdir: Path, name: str):
    runs = all_runs(client(workdir), name)
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


@pytest.mark.slow  # a tracked run through the installed command
def test_quickstart_experiment_records_everything(project: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "kc"
    cwd.mkdir()
    res = run_cli("run", str(project / "svm_experiment.yaml"), cwd=cwd)
    assert res.returncode == 0, res.stderr
    assert "child process says hi" in res.stdout  # echoed to the terminal too
    run = _only_run(cwd, "SVM #1")
    c = client(cwd)
    assert run.info.status == "FINISHED"
    # params: every effective value, file values and signature defaults
    assert run.data.params == {"C": "10", "kernel": "poly", "gamma": "auto", "degree": "3"}
    assert 0.5 < run.data.metrics["val_accuracy"] <= 1.0
    tags = run.data.tags
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert tags["mlflow.source.git.commit"] == head
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["git.dirty"] == "true"
    assert tags["seed"] == "1234" and tags["seed.numpy"] == "1234" and tags["seed.random"] == "1234"
    assert tags["env.python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert tags["env.os_name"]
    assert tags["hw.cpu_model"] and int(tags["hw.cpu_logical_cores"]) >= 1
    assert float(tags["hw.memory_total_gb"]) > 0
    assert "hw.gpu_count" in tags
    arts = set(artifact_paths(c, run.info.run_id))
    assert {
        "config/job.json",
        "environment/requirements.txt",
        "code/uncommitted.patch",
        "logs/console.log",
    } <= arts
    console = artifact_text(c, run.info.run_id, "logs/console.log")
    assert "child process says hi" in console and "to stderr" in console
    assert "val_accuracy=" in console
    assert "notes.txt" in artifact_text(c, run.info.run_id, "code/uncommitted.patch")
    reqs = artifact_text(c, run.info.run_id, "environment/requirements.txt")
    assert "mlflow==" in reqs and "scikit-learn==" in reqs
    cfg = json.loads(artifact_text(c, run.info.run_id, "config/job.json"))
    assert cfg["name"] == "SVM #1" and cfg["params"]["C"] == 10
    assert cfg["run"] == [str((project / "train_svm.py").resolve())]


@pytest.mark.slow  # a tracked run through the installed command
def test_params_override_from_cli(workdir: Path) -> None:
    job = EXAMPLES / "quickstart" / "svm_experiment.yaml"
    res = run_cli("run", str(job), "--params", '{"C": 2}', "--name", "override", cwd=workdir)
    assert res.returncode == 0, res.stderr
    run = _only_run(workdir, "override")
    assert run.data.params["C"] == "2" and run.data.params["kernel"] == "poly"


@pytest.mark.slow  # a tracked run through the installed command
def test_thesis_form_config_file(workdir: Path) -> None:
    job = EXAMPLES / "quickstart" / "svm_experiment.yaml"
    res = run_cli("--config_file", str(job), "--name", "thesis-form", cwd=workdir)
    assert res.returncode == 0, res.stderr
    assert _only_run(workdir, "thesis-form").info.status == "FINISHED"


@pytest.mark.slow  # a tracked run through the installed command
def test_script_runs_directly_and_is_tracked(workdir: Path) -> None:
    script = EXAMPLES / "quickstart" / "train_svm.py"
    res = subprocess.run(
        [sys.executable, str(script), "--C", "0.5", "--kernel", "linear"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    run = _only_run(workdir, "train_svm")
    assert run.info.status == "FINISHED"
    assert run.data.params == {"C": "0.5", "kernel": "linear", "degree": "3", "gamma": "scale"}
    assert "val_accuracy" in run.data.metrics


@pytest.mark.slow  # a tracked run through the installed command
def test_direct_run_with_unknown_flag_is_bad_input(workdir: Path) -> None:
    script = EXAMPLES / "quickstart" / "train_svm.py"
    res = subprocess.run(
        [sys.executable, str(script), "--CC", "0.5"], cwd=workdir, capture_output=True, text=True
    )
    assert res.returncode == 2
    assert "CC" in res.stderr and "Traceback" not in res.stderr
    assert all_runs(client(workdir), "train_svm") == []


@pytest.mark.slow  # a tracked run through the installed command
def test_failed_run_is_recorded_with_traceback(workdir: Path) -> None:
    write(
        workdir / "boom.py",
        """
        from ml_experiment import job

        @job
        def main(x: int = 1):
            print("about to fail")
            raise ValueError(f"bad x {x}")

        if __name__ == "__main__":
            main()
        """,
    )
    write(workdir / "boom.yaml", "name: boom\nparams: {x: 7}\nrun: [boom.py]\n")
    res = run_cli("run", "boom.yaml", cwd=workdir)
    assert res.returncode == 1
    assert "ValueError: bad x 7" in res.stderr
    run = _only_run(workdir, "boom")
    assert run.info.status == "FAILED"
    assert run.data.params == {"x": "7"}  # logged before the function ran
    tb = artifact_text(client(workdir), run.info.run_id, "error/traceback.txt")
    assert "ValueError: bad x 7" in tb and "boom.py" in tb
    assert "about to fail" in artifact_text(client(workdir), run.info.run_id, "logs/console.log")


@pytest.mark.slow  # a tracked run through the installed command
def test_delete_if_failed_and_scripts_stop_at_first_failure(workdir: Path) -> None:
    write(
        workdir / "fail_deleted.py",
        """
        from ml_experiment import job

        @job(delete_if_failed=True)
        def main():
            raise RuntimeError("nope")

        if __name__ == "__main__":
            main()
        """,
    )
    write(
        workdir / "never.py",
        """
        from pathlib import Path
        from ml_experiment import job

        @job
        def main():
            Path("never-ran").write_text("x")

        if __name__ == "__main__":
            main()
        """,
    )
    write(workdir / "multi.yaml", "name: multi\nrun: [fail_deleted.py, never.py]\n")
    res = run_cli("run", "multi.yaml", cwd=workdir)
    assert res.returncode == 1
    assert not (workdir / "never-ran").exists()
    runs = all_runs(client(workdir), "multi")
    assert [r.info.lifecycle_stage for r in runs] == ["deleted"]


@pytest.mark.slow  # a tracked run through the installed command
def test_several_scripts_each_their_own_run(workdir: Path) -> None:
    for name, value in (("first", 1), ("second", 2)):
        write(
            workdir / f"{name}.py",
            f"""
            from ml_experiment import job

            @job
            def main(scale: float = 1.0):
                return {{"value": {value} * scale}}
            """,
        )
    write(workdir / "two.yaml", "name: two\nparams: {scale: 3}\nrun: [first.py, second.py]\n")
    res = run_cli("run", "two.yaml", cwd=workdir)
    assert res.returncode == 0, res.stderr
    values = sorted(r.data.metrics["value"] for r in all_runs(client(workdir), "two"))
    assert values == [3.0, 6.0]


@pytest.mark.slow  # a tracked run through the installed command
def test_kind_job_runs_untracked(workdir: Path) -> None:
    write(
        workdir / "plain.py",
        """
        from pathlib import Path
        from ml_experiment import job

        @job
        def main(n: int = 1):
            Path("out.txt").write_text(str(n))

        if __name__ == "__main__":
            main()
        """,
    )
    write(workdir / "j.yaml", "name: plain\nkind: job\nparams: {n: 5}\nrun: [plain.py]\n")
    res = run_cli("run", "j.yaml", cwd=workdir)
    assert res.returncode == 0, res.stderr
    assert (workdir / "out.txt").read_text() == "5"
    assert not (workdir / "mlruns.db").exists()


@pytest.mark.slow  # a tracked run through the installed command
def test_generator_yields_are_steps_and_artifacts_logged(workdir: Path) -> None:
    write(
        workdir / "gen.py",
        """
        from pathlib import Path
        from ml_experiment import job

        @job
        def main(epochs: int = 3):
            for epoch in range(epochs):
                yield {"loss": 1.0 / (epoch + 1)}
            Path("model.txt").write_text("weights")
            return {"loss": 0.1}, {"model": "model.txt"}
        """,
    )
    write(workdir / "g.yaml", "name: gen\nrun: [gen.py]\n")
    res = run_cli("run", "g.yaml", cwd=workdir)
    assert res.returncode == 0, res.stderr
    c = client(workdir)
    run = _only_run(workdir, "gen")
    history = c.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, round(m.value, 3)) for m in history] == [
        (0, 1.0),
        (1, 0.5),
        (2, 0.333),
        (2, 0.1),
    ]
    assert "model/model.txt" in artifact_paths(c, run.info.run_id)


@pytest.mark.slow
def test_missing_required_parameter_creates_no_run(workdir: Path) -> None:
    write(
        workdir / "req.py",
        """
        from ml_experiment import job

        @job
        def main(lr: float):
            return {"x": lr}
        """,
    )
    write(workdir / "r.yaml", "name: req\nrun: [req.py]\n")
    res = run_cli("run", "r.yaml", cwd=workdir)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0
    assert "params.lr" in res.stderr and "missing required parameter" in res.stderr
    assert all_runs(client(workdir), "req") == []


@pytest.mark.slow  # a tracked run through the installed command
def test_secret_params_are_redacted(workdir: Path) -> None:
    write(
        workdir / "sec.py",
        """
        from ml_experiment import job

        @job
        def main(api_token: str = "", lr: float = 0.1):
            return {"lr": lr}
        """,
    )
    write(
        workdir / "s.yaml",
        "name: sec\nparams: {api_token: s3cr3t-t0ken-value, lr: 0.2}\nrun: [sec.py]\n",
    )
    res = run_cli("run", "s.yaml", cwd=workdir)
    assert res.returncode == 0, res.stderr
    c = client(workdir)
    run = _only_run(workdir, "sec")
    assert run.data.params["api_token"] == "***"
    for path in artifact_paths(c, run.info.run_id):
        assert "s3cr3t-t0ken-value" not in artifact_text(c, run.info.run_id, path)
