"""Groups: Optuna studies whose trials run in parallel on Ray, tracked as parent + child runs."""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from tests.conftest import all_runs, artifact_paths, artifact_text, client, run_cli, write
from tests.services import free_port

pytestmark = pytest.mark.slow

OBJECTIVE = """
import json, os, time
from pathlib import Path
from ml_experiment import job

HERE = Path(__file__).parent
LOG = HERE / "evaluations.jsonl"  # one line as each trial starts

@job
def main(x: float = 0.0, kind: str = "a", pause: float = 0.0, meet: float = 0.0):
    start = time.time()
    with LOG.open("a") as f:
        f.write(json.dumps({"x": x, "kind": kind, "pid": os.getpid()}) + "\\n")
    print(f"evaluating x={x!r} kind={kind}", flush=True)
    met = None
    if meet:
        # Wait (at most `meet` s) until a second trial has started: two trials that run at
        # the same time meet at once, whenever the pool's workers come up; serial ones never.
        (HERE / f"started-{os.getpid()}-{time.time_ns()}").touch()
        deadline = time.time() + meet
        while len(list(HERE.glob("started-*"))) < 2 and time.time() < deadline:
            time.sleep(0.02)
        met = len(list(HERE.glob("started-*"))) >= 2
    if pause:
        time.sleep(pause)
    with (HERE / "intervals.jsonl").open("a") as f:  # one line as each trial ends
        f.write(json.dumps({"start": start, "end": time.time(), "met": met}) + "\\n")
    return {"y": (x - 1.0) ** 2 + (0.5 if kind == "b" else 0.0)}
"""


def group_file(path: Path, **fields: object) -> Path:
    base = {
        "name": "g",
        "kind": "group",
        "report": False,  # the report has its own tests
        "num_trials": 6,
        "sampler": "random",
        "pruner": "none",
        "seed": 7,
        "param_space": {"x": "uniform(-3, 3)", "kind": "choice(['a', 'b'])"},
        "metric": {"name": "y", "direction": "minimize"},
        "resources_per_worker": {"cpu": 1},
        "run": ["objective.py"],
    }
    base.update(fields)
    path.write_text(json.dumps(base))
    return path


def run_group_inprocess(job: Path, *, resume: bool = False):
    from ml_experiment.config import load_config
    from ml_experiment.execution import run_job

    return run_job(load_config(job), resume=resume)[0]


def evaluations(folder: Path, log: str = "evaluations.jsonl") -> list[dict]:
    path = folder / log
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def intervals(folder: Path) -> list[dict]:
    """When each finished trial ran: ``start``, ``end`` (epoch s) and ``met`` (see OBJECTIVE)."""
    return evaluations(folder, "intervals.jsonl")


def overlapping_pairs(evals: list[dict]) -> int:
    """How many pairs of evaluations ran at the same time (their intervals intersect)."""
    return sum(
        a["start"] < b["end"] and b["start"] < a["end"]
        for i, a in enumerate(evals)
        for b in evals[i + 1 :]
    )


def split_runs(workdir: Path, name: str):
    runs = all_runs(client(workdir), name)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)
    return parents[0], children


def test_group_on_local_ray_records_parent_and_children(workdir: Path, ray_local: None) -> None:
    write(workdir / "objective.py", OBJECTIVE)
    job = group_file(workdir / "g.json", num_trials=8, params={"meet": 60.0})
    outcome = run_group_inprocess(job)
    assert outcome.counts == {"complete": 8, "fail": 0, "pruned": 0}
    assert gc.isenabled()  # held off while the group started, on again since
    parent, children = split_runs(workdir, "g")
    assert parent.info.status == "FINISHED"
    assert len(children) == 8 and all(c.info.status == "FINISHED" for c in children)
    assert sorted(int(c.data.tags["ml_experiment.trial_number"]) for c in children) == list(
        range(8)
    )
    best = min(children, key=lambda c: c.data.metrics["y"])
    pm = parent.data.metrics
    assert pm["trials_complete"] == 8 and pm["trials_failed"] == 0 and pm["total_time_s"] > 0
    assert pm["best_y"] == pytest.approx(best.data.metrics["y"])
    assert int(pm["best_trial_number"]) == int(best.data.tags["ml_experiment.trial_number"])
    assert parent.data.tags["best_params.kind"] == best.data.params["kind"]
    assert float(parent.data.tags["best_params.x"]) == pytest.approx(float(best.data.params["x"]))
    # The parent carries the full capture; children their params, seeds and state.
    assert parent.data.params["param_space.x"] == "uniform(-3, 3)"
    assert "env.python_version" in parent.data.tags
    c_ = client(workdir)
    for c in children:
        assert set(c.data.params) == {"x", "kind", "pause", "meet"}
        assert c.data.tags["ml_experiment.trial_state"] == "complete"
        assert c.data.tags["seed"] == c.data.tags["seed.random"]
        # README: every tracked run records logs/console.log; a trial's holds its own output.
        console = artifact_text(c_, c.info.run_id, "logs/console.log")
        assert f"evaluating x={float(c.data.params['x'])!r} kind={c.data.params['kind']}" in (
            console
        )
        assert console.count("evaluating x=") == 1
    assert "logs/console.log" in artifact_paths(c_, parent.info.run_id)
    assert json.loads(artifact_text(c_, parent.info.run_id, "best_trial.json"))["number"] == (
        int(pm["best_trial_number"])
    )
    # Trials ran two at a time (2 slots), whichever pool workers the session's Ray had.
    evals = intervals(workdir)
    assert len(evals) == 8 and all(e["met"] for e in evals)
    assert overlapping_pairs(evals) >= 1
    assert all(
        sum(e["start"] <= t < e["end"] for e in evals) <= 2 for t in (e["start"] for e in evals)
    )


def test_same_seed_same_parameter_sequence(tmp_path: Path, monkeypatch, ray_local: None) -> None:
    sequences = []
    for attempt in ("one", "two"):
        folder = tmp_path / attempt
        folder.mkdir()
        monkeypatch.chdir(folder)
        write(folder / "objective.py", OBJECTIVE)
        # TPE's first 10 trials and the random sampler are deterministic whatever the completion order.
        run_group_inprocess(group_file(folder / "g.json", sampler="tpe", num_trials=8))
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        study = optuna.load_study(
            study_name="g",
            storage=JournalStorage(JournalFileBackend(str(folder / "optuna-studies.journal"))),
        )
        sequences.append([(t.number, t.params) for t in study.trials])
    assert sequences[0] == sequences[1]
    assert len({round(p["x"], 12) for _, p in sequences[0]}) == 8


FAILING = """
import os, time
from ml_experiment import job

@job
def main(i: int = 0):
    if i == 1:
        raise ValueError("trial one is broken")
    if i == 2:
        os._exit(1)
    if i == 3:
        time.sleep(600)
    if i == 4:
        return {"other": 1.0}
    return {"y": float(i)}
"""


def test_failures_are_recorded_and_the_group_goes_on(workdir: Path, ray_local: None) -> None:
    write(workdir / "objective.py", FAILING)
    job = group_file(
        workdir / "g.json",
        name="failing",
        num_trials=7,
        sampler="grid",
        param_space={"i": "range(0, 7)"},
        # Counted from dispatch: generous enough for a replacement worker (after os._exit) to
        # start on a loaded machine, far below the hanging trial's 600 s.
        timeout_per_trial=30,
    )
    outcome = run_group_inprocess(job)
    assert outcome.counts == {"complete": 3, "fail": 4, "pruned": 0}
    parent, children = split_runs(workdir, "failing")
    by_i = {int(c.data.params["i"]): c for c in children}
    assert sorted(by_i) == list(range(7))
    for i in (0, 5, 6):
        assert by_i[i].info.status == "FINISHED"
    errors = {i: by_i[i].data.tags.get("error", "") for i in (1, 2, 3, 4)}
    assert all(by_i[i].info.status == "FAILED" for i in errors)
    assert "ValueError: trial one is broken" in errors[1]
    assert "worker process died" in errors[2]
    assert "timed out" in errors[3] and "timeout_per_trial=30" in errors[3]
    assert "'y' was not returned" in errors[4] and "other" in errors[4]
    tb = artifact_text(client(workdir), by_i[1].info.run_id, "error/traceback.txt")
    assert "trial one is broken" in tb
    assert parent.data.metrics["trials_failed"] == 4


PRUNED = """
from ml_experiment import job, Trial

@job
def main(quality: float = 0.0, use_trial: bool = False):
    for step in range(8):
        value = quality * (step + 1)
        if use_trial:
            trial = Trial.get_current()
            trial.report(value, step)
            if trial.should_prune():
                import optuna
                raise optuna.TrialPruned()
            continue
        yield {"acc": value}
    return {"acc": quality * 8}
"""


@pytest.mark.parametrize("use_trial", [False, True])
def test_pruning_reaches_the_pruner_from_parallel_trials(
    workdir: Path, ray_local: None, use_trial: bool
) -> None:
    write(workdir / "objective.py", PRUNED)
    job = group_file(
        workdir / "g.json",
        name="pruned",
        num_trials=14,
        sampler="random",
        pruner="median",
        params={"use_trial": use_trial},
        param_space={"quality": "uniform(0, 1)"},
        metric={"name": "acc", "direction": "maximize"},
    )
    outcome = run_group_inprocess(job)
    assert outcome.counts["pruned"] >= 1, outcome.counts
    assert outcome.counts["fail"] == 0
    _, children = split_runs(workdir, "pruned")
    pruned = [c for c in children if c.data.tags["ml_experiment.trial_state"] == "pruned"]
    assert len(pruned) == outcome.counts["pruned"]
    assert all(c.info.status == "KILLED" for c in pruned)


SHARED = """
import os
from pathlib import Path
import numpy as np
from ml_experiment import DataLoader, job

HERE = Path(__file__).parent

class Arrays(DataLoader):
    @classmethod
    def load_data(cls):
        import gc

        with (HERE / "loads.txt").open("a") as f:
            f.write(f"{os.getpid()}\\n")
        (HERE / "collector.txt").write_text(str(gc.isenabled()))
        return {"X": np.arange(1_000_000, dtype=np.float64), "name": "demo"}

@job(data_loader=Arrays)
def main(k: int = 0):
    data = Arrays.load_data()
    X = data["X"]
    return {"sum": float(X[: k + 1].sum()), "zero_copy": float(not X.flags.writeable)}
"""


def test_data_loader_runs_once_and_is_shared(workdir: Path, ray_local: None) -> None:
    write(workdir / "objective.py", SHARED)
    job = group_file(
        workdir / "g.json",
        name="shared",
        num_trials=6,
        param_space={"k": "range(0, 100)"},
        metric={"name": "sum", "direction": "maximize"},
    )
    run_group_inprocess(job)
    assert (workdir / "loads.txt").read_text().splitlines() == [str(os.getpid())]
    # User code runs with Python's collector on, though the group's start holds it off.
    assert (workdir / "collector.txt").read_text() == "True" and gc.isenabled()
    parent, children = split_runs(workdir, "shared")
    fp = parent.data.tags["data.fingerprint.Arrays"]
    import numpy as np

    from ml_experiment.tracking.fingerprint import fingerprint

    assert fp == fingerprint({"X": np.arange(1_000_000, dtype=np.float64), "name": "demo"})
    for c in children:
        assert c.data.tags["data.fingerprint.Arrays"] == fp
        # Read-only: the array is a view of the object store, not a copy.
        assert c.data.metrics["zero_copy"] == 1.0


BROKEN_LOADER = """
from ml_experiment import DataLoader, job

class Broken(DataLoader):
    @classmethod
    def load_data(cls):
        raise FileNotFoundError("no such file: events.parquet")

@job(data_loader=Broken)
def main(k: int = 0):
    return {"sum": 0.0}
"""


@pytest.mark.parametrize("joining", [False, True])
def test_a_group_that_fails_before_its_first_trial_is_still_recorded(
    workdir: Path, ray_local: None, joining: bool
) -> None:
    """The store opens on the writer beside Ray's start or, joining a cluster, once trials are
    dispatched: a group that never got that far still records its failure."""
    write(workdir / "objective.py", BROKEN_LOADER)
    job = group_file(
        workdir / "g.json",
        name="broken",
        param_space={"k": "range(0, 10)"},
        metric={"name": "sum", "direction": "maximize"},
        # In process, the session's Ray is used; the address only makes the group a joining one.
        **({"ray_config": {"address": "127.0.0.1:6379"}} if joining else {}),
    )
    with pytest.raises(FileNotFoundError, match=r"events\.parquet"):
        run_group_inprocess(job)
    assert gc.isenabled()
    parent, children = split_runs(workdir, "broken")
    assert parent.info.status == "FAILED" and children == []
    assert "FileNotFoundError: no such file: events.parquet" in parent.data.tags["error"]


def test_rerunning_a_finished_group_starts_a_new_study(
    workdir: Path, ray_local: None, capfd: pytest.CaptureFixture[str]
) -> None:
    from ml_experiment.exceptions import ConfigError

    write(workdir / "objective.py", OBJECTIVE)
    job = group_file(workdir / "g.json", name="twice", num_trials=2)
    first = run_group_inprocess(job)
    second = run_group_inprocess(job)
    assert (first.study_name, second.study_name) == ("twice", "twice#2")
    assert "starting study 'twice#2'" in capfd.readouterr().err
    assert first.run_id != second.run_id
    assert len(all_runs(client(workdir), "twice")) == 6
    # Nothing left to resume: both studies finished.
    with pytest.raises(ConfigError, match="no unfinished study named 'twice'"):
        run_group_inprocess(job, resume=True)


@pytest.mark.parametrize("storage", ["journal", "postgresql"])
def test_sigkill_then_resume(tmp_path: Path, storage: str, request: pytest.FixtureRequest) -> None:
    folder = tmp_path / "resume"
    folder.mkdir()
    write(folder / "objective.py", OBJECTIVE)
    url = request.getfixturevalue("pg_database") if storage == "postgresql" else None
    job = group_file(
        folder / "g.json",
        name="resumable",
        num_trials=30,
        sampler="tpe",
        params={"pause": 0.4},
        ray_config={"num_cpus": 2},
        **({"study_storage": url} if url else {}),
    )
    cli = [str(Path(sys.executable).parent / "ml-experiment"), "run", str(job)]
    proc = subprocess.Popen(
        cli,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while len(evaluations(folder)) < 8 and time.time() < deadline:
            time.sleep(0.1)
        assert len(evaluations(folder)) >= 8, "the group did not start"
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = evaluations(folder)
    assert len(before) < 30

    res = run_cli("run", str(job), cwd=folder)
    assert res.returncode == 2 and "--resume" in res.stderr

    res = run_cli("run", str(job), "--resume", cwd=folder)
    assert res.returncode == 0, res.stderr

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    journal = folder / "optuna-studies.journal"
    assert journal.exists() == (url is None)
    study = optuna.load_study(
        study_name="resumable",
        storage=url or JournalStorage(JournalFileBackend(str(journal))),
    )
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    interrupted = [t for t in study.trials if t.user_attrs.get("ml_experiment.interrupted")]
    assert len(complete) == 30
    assert all(t.state == TrialState.FAIL for t in interrupted)
    parent, children = split_runs(folder, "resumable")
    finished = [c for c in children if c.info.status == "FINISHED"]
    failed = [c for c in children if c.info.status == "FAILED"]
    assert len(finished) == 30
    assert len(failed) == len(interrupted)
    assert all("interrupted" in c.data.tags["error"] for c in failed)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_complete"] == 30
    assert parent.data.tags["ml_experiment.sittings"] == "2"
    # No parameter set evaluated twice, except those that were running when the driver died.
    seen: dict[tuple, int] = {}
    for e in evaluations(folder):
        key = (round(e["x"], 12), e["kind"])
        seen[key] = seen.get(key, 0) + 1
    twice = {k for k, n in seen.items() if n > 1}
    interrupted_keys = {(round(t.params["x"], 12), t.params["kind"]) for t in interrupted}
    assert twice <= interrupted_keys
    assert len(seen) == 30


def test_ctrl_c_stops_the_group_with_code_130_and_resume_finishes_it(tmp_path: Path) -> None:
    folder = tmp_path / "interrupt"
    folder.mkdir()
    write(folder / "objective.py", OBJECTIVE)
    job = group_file(
        folder / "g.json", name="stopped", num_trials=8, params={"pause": 30.0},
        ray_config={"num_cpus": 2},
    )  # fmt: skip
    cli = [str(Path(sys.executable).parent / "ml-experiment"), "run", str(job)]
    proc = subprocess.Popen(
        cli, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while len(evaluations(folder)) < 2 and time.time() < deadline:
            time.sleep(0.1)
        assert len(evaluations(folder)) == 2, "the trials did not start"
        sent = time.time()
        proc.send_signal(signal.SIGINT)  # Ctrl-C reaches the driver only, as from a terminal
        _, stderr = proc.communicate(timeout=60)
        took = time.time() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    last = stderr.splitlines()[-1]
    assert "interrupted after" in last and "--resume" in last, stderr
    assert took < 30, f"the running trials (30 s each) were not stopped: exit after {took:.1f} s"
    parent, children = split_runs(folder, "stopped")
    assert parent.info.status == "KILLED" and children == []
    assert parent.data.tags["ml_experiment.sittings"] == "1"

    res = run_cli(
        "run", str(job), "--resume", "--params", '{"pause": 0.0}', cwd=folder
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    parent, children = split_runs(folder, "stopped")
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_complete"] == 8
    assert sorted(c.info.status for c in children).count("FINISHED") == 8
    assert sum("interrupted" in c.data.tags.get("error", "") for c in children) == 2
    assert parent.data.tags["ml_experiment.sittings"] == "2"


@pytest.fixture
def ray_head(tmp_path: Path):
    """A real Ray cluster: ``ray start --head`` on 127.0.0.1, stopped by its process group."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="mlx-head-")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    ray_bin = str(Path(sys.executable).parent / "ray")
    proc = subprocess.Popen(
        [
            ray_bin,
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            f"--temp-dir={temp}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("ray start --head did not open its port")
        yield f"127.0.0.1:{port}", env
    finally:
        try:
            # `ray start --block` stops its processes one by one on SIGTERM: over 20 s on
            # 2 busy cores. 5 s for that, then the whole process group at once.
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        import shutil

        shutil.rmtree(temp, ignore_errors=True)


def test_group_joins_a_ray_cluster(tmp_path: Path, ray_head) -> None:
    address, env = ray_head
    folder = tmp_path / "cluster"
    folder.mkdir()
    write(folder / "objective.py", OBJECTIVE)
    job = group_file(
        folder / "g.json", name="on-cluster", num_trials=6, ray_config={"address": address}
    )
    timings = tmp_path / "timings.json"
    res = run_cli("run", str(job), cwd=folder, env={**env, "ML_EXPERIMENT_TIMINGS": str(timings)})
    assert res.returncode == 0, res.stderr
    parent, children = split_runs(folder, "on-cluster")
    assert parent.info.status == "FINISHED"
    assert len([c for c in children if c.info.status == "FINISHED"]) == 6
    # Joining, the driver connected before it opened the study (both compete for the GIL), and
    # the store opened once the trials were dispatched, not to slow the workers' start.
    spans = json.loads(timings.read_text())
    assert spans["ray_start"][1] <= spans["study"][0], spans
    assert spans["first_dispatch"][0] <= spans["store"][0] <= spans["parent_run"][0], spans


def test_ray_config_sizes_the_ray_the_command_starts(tmp_path: Path) -> None:
    """``ray_config`` through the installed command, which starts its own Ray.

    The in-process tests share the session's Ray (``ray_local``), where ``ray_config`` is ignored.
    With ``num_cpus: 1`` one trial runs at a time: the first waits out its 8 s for a partner and
    none overlap. Were ``ray_config`` ignored, Ray would take this machine's 2 CPUs: the first
    two trials would meet at once and overlap.
    """
    write(tmp_path / "objective.py", OBJECTIVE)
    job = group_file(
        tmp_path / "g.json", name="one-cpu", num_trials=3, params={"meet": 8.0},
        ray_config={"num_cpus": 1},
    )  # fmt: skip
    res = run_cli("run", str(job), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    evals = sorted(intervals(tmp_path), key=lambda e: e["start"])
    assert len(evals) == 3
    assert overlapping_pairs(evals) == 0, evals
    assert [e["met"] for e in evals] == [False, True, True]
    # The command left the way a group does (_exit.leave), yet closed the store's connections.
    assert (tmp_path / "mlruns.db").exists() and not list(tmp_path.glob("mlruns.db-*"))


def test_resume_without_a_study_is_refused_through_the_command(tmp_path: Path) -> None:
    write(tmp_path / "objective.py", OBJECTIVE)
    job = group_file(tmp_path / "g.json", name="never-ran", ray_config={"num_cpus": 1})
    res = run_cli("run", str(job), "--resume", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == (
        f"error: {job}: name: --resume: there is no study named 'never-ran' to resume; "
        "run without --resume to start one"
    )
    # Nothing ran and nothing was written: no store, no study.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json", "objective.py"]
