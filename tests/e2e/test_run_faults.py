"""Runs that die, exit, are stopped or return what MLflow refuses: no work lost, nothing leaked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.conftest import CLI, all_runs, artifact_text, client, run_cli, write

pytestmark = pytest.mark.slow


def experiment(folder: Path, body: str, **fields: object) -> Path:
    write(
        folder / "train.py",
        f"""
        import os, sys, time
        from ml_experiment import job

        @job
        def main(pause: float = 0.0):
            print("started", flush=True)
        {body}
            return {{"acc": 0.5}}
        """,
    )
    job_file = {"name": "exp", "kind": "experiment", "run": ["train.py"], **fields}
    (folder / "exp.json").write_text(json.dumps(job_file))
    return folder / "exp.json"


def only_run(folder: Path, name: str = "exp"):
    runs = all_runs(client(folder), name)
    assert len(runs) == 1
    return runs[0]


def wait_for_status(folder: Path, status: str, timeout: float = 20) -> object:
    deadline = time.time() + timeout
    while True:
        run = only_run(folder)
        if run.info.status == status or time.time() > deadline:
            return run
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("body", "code", "status", "error"),
    [
        ("    sys.exit(0)", 0, "FINISHED", None),
        ("    sys.exit(None)", 0, "FINISHED", None),
        ("    sys.exit(3)", 1, "FAILED", "SystemExit: exit code 3"),
        ("    raise SystemExit('no data')", 1, "FAILED", "SystemExit: exit code 'no data'"),
    ],
)
def test_system_exit_in_an_experiment(
    tmp_path: Path, body: str, code: int, status: str, error: str | None
) -> None:
    job = experiment(tmp_path, body)
    res = run_cli("run", str(job), cwd=tmp_path)
    assert res.returncode == code, res.stderr
    run = only_run(tmp_path)
    assert run.info.status == status
    assert run.data.tags.get("error") == error
    # Always recorded: the console and the duration.
    assert "started" in artifact_text(client(tmp_path), run.info.run_id, "logs/console.log")
    assert run.data.metrics["duration_s"] >= 0


def test_a_process_that_dies_leaves_its_run_failed_not_running(tmp_path: Path) -> None:
    job = experiment(tmp_path, "    os._exit(0)")
    res = run_cli("run", str(job), cwd=tmp_path)
    assert res.returncode == 0  # os._exit(0) is the process's own exit code
    run = wait_for_status(tmp_path, "FAILED")
    assert run.info.status == "FAILED"
    assert "died before ending it" in run.data.tags["error"]


def test_sigterm_stops_an_experiment_like_ctrl_c(tmp_path: Path) -> None:
    job = experiment(tmp_path, "    time.sleep(60)")
    proc = subprocess.Popen(
        [*CLI, "run", str(job)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, stderr
    assert "interrupted" in stderr.splitlines()[-1]
    assert only_run(tmp_path).info.status == "KILLED"


GROUP_SCRIPT = """
import json, time
from pathlib import Path
from ml_experiment import Trial, job

@job
def main(x: float = 0.5, pause: float = 0.0, api_key: str = "", password: str = ""):
    n = Trial.get_current().number
    print(f"trial {n} uses key {api_key}", flush=True)
    Path(f"started-{n}").write_text("")
    time.sleep(pause)
    if n == 0:
        Path("out.txt").write_text("x")
        return {"acc": x}, {"../../../outside/x": "out.txt"}
    if n == 1:
        return {"acc@1:top": x, "acc": x}
    if n == 2:
        raise ValueError(f"refused password {password}")
    return {"acc": x}
"""


def group(folder: Path, **fields: object) -> Path:
    write(folder / "objective.py", GROUP_SCRIPT)
    base = {
        "name": "g", "kind": "group", "report": False, "num_trials": 4, "sampler": "random", "seed": 1,
        "param_space": {"x": "uniform(0, 1)"}, "metric": {"name": "acc", "direction": "maximize"},
        "resources_per_worker": {"cpu": 1}, "ray_config": {"num_cpus": 2}, "run": ["objective.py"],
    }  # fmt: skip
    base.update(fields)
    (folder / "g.json").write_text(json.dumps(base))
    return folder / "g.json"


def test_one_bad_trial_record_fails_that_trial_only_and_no_secret_is_stored(tmp_path: Path) -> None:
    job = group(tmp_path)
    secrets = {"api_key": "sk-LIVE-5f2a9c", "password": "hunter2-horse"}
    res = run_cli("run", str(job), "--params", json.dumps(secrets), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    runs = all_runs(client(tmp_path), "g")
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = {
        int(r.data.tags["ml_experiment.trial_number"]): r
        for r in runs
        if "mlflow.parentRunId" in r.data.tags
    }
    assert sorted(children) == [0, 1, 2, 3]
    assert parent.info.status == "FINISHED"
    assert {n: r.info.status for n, r in children.items()} == {
        0: "FAILED", 1: "FAILED", 2: "FAILED", 3: "FINISHED"
    }  # fmt: skip
    assert "could not record this run" in children[0].data.tags["error"]
    assert "acc@1:top" in children[1].data.tags["error"]
    assert not (tmp_path.parent / "outside").exists() and not list(tmp_path.rglob("outside"))
    # Every trial has its console log, with the key scrubbed.
    for n, r in children.items():
        text = artifact_text(client(tmp_path), r.info.run_id, "logs/console.log")
        assert f"trial {n} uses key ***" in text
    assert parent.data.tags["best_params.api_key"] == "***"
    assert parent.data.tags["best_params.password"] == "***"
    # Each place a value is stored holds the mask (so the byte scan below is not vacuous):
    # params of the parent and of every trial, the error tag, the traceback, best_trial.json,
    # the study journal.
    c = client(tmp_path)
    # Trial 1's metrics were refused; its run keeps its params and the reason.
    for run in (parent, *children.values()):
        secret_params = {k: v for k, v in run.data.params.items() if k.endswith(tuple(secrets))}
        assert len(secret_params) == 2 and set(secret_params.values()) == {"***"}, run.data.params
    assert "ValueError: refused password ***" in children[2].data.tags["error"]
    assert "refused password ***" in artifact_text(
        c, children[2].info.run_id, "error/traceback.txt"
    )
    best = json.loads(artifact_text(c, parent.info.run_id, "best_trial.json"))
    assert best["params"]["api_key"] == best["params"]["password"] == "***"
    journal = (tmp_path / "optuna-studies.journal").read_text()
    assert "refused password ***" in journal
    # Nor in what the command prints: the summary (best trial's params, failures) and the
    # [trial N] lines of the trials' own output.
    own = res.stdout + res.stderr
    assert "refused password ***" in own and "[trial 0] trial 0 uses key ***" in own, own
    for value in secrets.values():
        assert value not in own, own
    artifacts = [p for p in tmp_path.rglob("mlartifacts/**/*") if p.is_file()]
    assert {"console.log", "traceback.txt", "best_trial.json"} <= {p.name for p in artifacts}
    # Nowhere in the store, the artifacts or the study: params, tags, logs, tracebacks.
    stored = [
        tmp_path / "mlruns.db",
        *tmp_path.rglob("mlartifacts/**/*"),
        *tmp_path.glob("*.journal"),
    ]
    for path in stored:
        if path.is_file():
            data = path.read_bytes()
            for value in secrets.values():
                assert value.encode() not in data, (path, value)


def test_sigterm_stops_a_group_and_resume_finishes_it(tmp_path: Path) -> None:
    write(tmp_path / "objective.py", GROUP_SCRIPT.replace("if n == 0:", "if n < 0:"))
    fields = {"num_trials": 4, "params": {"pause": 30.0}}
    base = {
        "name": "g", "kind": "group", "report": False, "sampler": "random", "seed": 1,
        "param_space": {"x": "uniform(0, 1)"}, "metric": {"name": "acc", "direction": "maximize"},
        "resources_per_worker": {"cpu": 1}, "ray_config": {"num_cpus": 2}, "run": ["objective.py"],
        **fields,
    }  # fmt: skip
    (tmp_path / "g.json").write_text(json.dumps(base))
    proc = subprocess.Popen(
        [*CLI, "run", "g.json"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while len(list(tmp_path.glob("started-*"))) < 2 and time.time() < deadline:
            time.sleep(0.1)
        assert len(list(tmp_path.glob("started-*"))) == 2, "the trials did not start"
        proc.send_signal(signal.SIGTERM)  # what kill, a scheduler or docker stop sends
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, stderr
    last = stderr.splitlines()[-1]
    assert "interrupted after 0 of 4 trials" in last and "--resume" in last
    parent = next(
        r for r in all_runs(client(tmp_path), "g") if "mlflow.parentRunId" not in r.data.tags
    )
    assert parent.info.status == "KILLED"
    res = run_cli("run", "g.json", "--resume", "--params", '{"pause": 0.0}', cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    runs = all_runs(client(tmp_path), "g")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    trial_states = sorted(r.data.tags["ml_experiment.trial_state"] for r in children)
    # The two trials running at the SIGTERM are failed (interrupted) and run again.
    assert trial_states.count("fail") >= 2
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials_complete"] + parent.data.metrics["trials_failed"] == 4
