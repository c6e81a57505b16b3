"""``ml-experiment reproduce RUN_ID``: re-run a recorded run from its record and verify it.

The recorded code is materialised in a private folder, the recorded job file (params, seed, data
files, determinism) is pointed at it, and ``ml-experiment run`` runs it in a new process, as a new
run of the same experiment tagged with the run it reproduces. The two records are then compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ml_experiment.reproduce._materialise import CannotReproduce, materialise, relocate
from ml_experiment.reproduce._verdict import CANNOT, Verdict, compare_metrics, drift
from ml_experiment.tracking._capture import RUN_CODE_ENV, RUN_TAGS_ENV
from ml_experiment.tracking.record import (
    REPRODUCTION_REPORT,
    TAG_REPRODUCED_BY,
    TAG_REPRODUCES,
    TAG_VERDICT,
    RunRecord,
)


def load_original(run_id: str, tracking_uri: str | None) -> tuple[RunRecord, str]:
    """The run to reproduce, and its knowledge center's URI.

    Raises:
        ConfigError: unknown run id (or one from another knowledge center).
        CannotReproduce: the run's record lacks its job file (artifacts deleted, or not a run
            made by ml-experiment).
    """
    from ml_experiment.exceptions import TrackingError
    from ml_experiment.reproduce._read import open_client

    _, uri = open_client(tracking_uri)
    try:
        record = RunRecord.load(run_id, tracking_uri=uri)
    except TrackingError as exc:
        raise CannotReproduce(str(exc)) from None
    if record.config is None:
        raise CannotReproduce(
            f"run {run_id} has no recorded job file (config/job.json): it was not made by "
            "ml-experiment, or its artifacts were deleted"
        )
    return record, uri


def check_data(record: RunRecord) -> None:
    """The job file's data files still hash as recorded."""
    from ml_experiment.tracking._capture import hash_data_files

    for path, info in record.data_files.items():
        if not Path(path).exists():
            raise CannotReproduce(f"data changed: {path} no longer exists")
        now = hash_data_files([path])[path]["sha256"]
        if now != info.get("sha256"):
            raise CannotReproduce(
                f"data changed: {path} (sha256 {str(info.get('sha256'))[:12]}... recorded, "
                f"{now[:12]}... now)"
            )


def rerun_config(record: RunRecord, code: Path, uri: str) -> tuple[dict[str, Any], Path]:
    """The recorded job file pointed at the materialised code, and the folder to run it from."""
    config = dict(record.config or {})
    runs = []
    for script in config.get("run", []):
        moved = relocate(script, record, code)
        if moved is None or not moved.is_file():
            raise CannotReproduce(f"script {script} is not part of the recorded code")
        runs.append(str(moved))
    config["run"] = runs
    files = []
    for path in config.get("data_files", []):
        moved = relocate(path, record, code)
        if moved is not None and not moved.exists():
            # Data the code record does not hold (ignored by git): the verified original.
            moved.parent.mkdir(parents=True, exist_ok=True)
            moved.symlink_to(path)
        files.append(str(moved or path))
    config["data_files"] = files
    config["tracking_uri"] = uri
    config.pop("docker_config", None)
    config.pop("source", None)
    cwd = relocate(record.code.get("cwd", ""), record, code) if record.code.get("cwd") else None
    if cwd is None or not cwd.is_dir():
        cwd = Path(runs[0]).parent if runs else code
    return config, cwd


def run_job_file(
    config: dict[str, Any],
    cwd: Path,
    tags: dict[str, str],
    env: dict[str, str],
    work: Path,
    code: dict[str, Any] | None = None,
) -> tuple[int, str]:
    """``ml-experiment run`` on ``config`` in a new process; (exit code, its output)."""
    job = work / "reproduce-job.json"
    job.write_text(json.dumps(config, indent=2), encoding="utf-8")
    full_env = {**os.environ, **env, RUN_TAGS_ENV: json.dumps(tags)}
    if code is not None:  # the re-run's code record is the original's commit and patch
        (work / "code.json").write_text(json.dumps(code), encoding="utf-8")
        full_env[RUN_CODE_ENV] = str(work / "code.json")
    cmd = [sys.executable, "-m", "ml_experiment", "run", str(job), "-q"]
    done = subprocess.run(
        cmd, cwd=cwd, env=full_env, capture_output=True, text=True, errors="replace", check=False
    )
    return done.returncode, done.stdout + done.stderr


def code_record(record: RunRecord) -> dict[str, Any] | None:
    """What a re-run records as its code: the original's commit and patch (None: a snapshot)."""
    if not record.code.get("commit"):
        return None
    keep = ("commit", "branch", "repo", "root", "dirty", "patch")
    return {
        **{k: record.code[k] for k in keep if k in record.code},
        "manifest": record.code_manifest,
    }


def find_rerun(client: Any, record: RunRecord, since: float) -> str | None:
    """The newest run of the experiment tagged as reproducing ``record``."""
    experiment = client.get_experiment_by_name(record.experiment)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_REPRODUCES}` = '{record.run_id}' "
        f"and attributes.start_time >= {int(since * 1000) - 1000}",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def store_verdict(client: Any, verdict: Verdict) -> None:
    """The verdict on both runs: tags, and the full report on the re-run."""
    if verdict.rerun_id is None:
        return
    client.set_tag(verdict.rerun_id, TAG_VERDICT, verdict.verdict)
    client.log_text(verdict.rerun_id, json.dumps(verdict.to_json(), indent=2), REPRODUCTION_REPORT)
    client.set_tag(verdict.run_id, TAG_REPRODUCED_BY, verdict.rerun_id)
    client.set_tag(verdict.run_id, TAG_VERDICT, verdict.verdict)


def failure_reason(rerun: RunRecord, output: str) -> str:
    error = rerun.error or (output.strip().splitlines() or ["no output"])[-1]
    if "ModuleNotFoundError" in error or "ImportError" in error:
        return f"a required package is missing: {error}"
    return f"the re-run failed: {error}"


def rerun(
    record: RunRecord, uri: str, client: Any, changes: dict[str, Any]
) -> tuple[RunRecord, str]:
    """Re-run ``record``'s job (with ``changes``) from its materialised code; read it back.

    Returns the re-run's record and the command's output.
    """
    from ml_experiment._tmp import private_dir

    with private_dir() as tmp:
        code = materialise(record, Path(tmp) / "code", tracking_uri=uri)
        config, cwd = rerun_config(record, code, uri)
        config.update(changes)
        started = time.time()
        env = {k: str(v) for k, v in record.numerics.get("env", {}).items()}
        exit_code, output = run_job_file(
            config, cwd, {TAG_REPRODUCES: str(record.run_id)}, env, Path(tmp), code_record(record)
        )
    rerun_id = find_rerun(client, record, started)
    if rerun_id is None:
        last = (output.strip().splitlines() or ["no output"])[-1]
        raise CannotReproduce(f"the re-run did not start (exit {exit_code}): {last}")
    return RunRecord.load(rerun_id, tracking_uri=uri), output


def reproduce_experiment(record: RunRecord, uri: str, *, rtol: float, atol: float) -> Verdict:
    from ml_experiment.reproduce._read import open_client

    check_data(record)
    client, _ = open_client(uri)
    again, output = rerun(record, uri, client, {"kind": "experiment"})
    verdict = judge(record, again, rtol, atol, output)
    store_verdict(client, verdict)
    return verdict


def judge(
    record: RunRecord, rerun: RunRecord, rtol: float, atol: float, output: str = ""
) -> Verdict:
    """The verdict of one re-run against its original."""
    found = drift(record, rerun)
    base = Verdict(str(record.run_id), rerun.run_id, CANNOT, drift=found)
    if rerun.status != "FINISHED":
        base.reason = failure_reason(rerun, output)
        return base
    changed = [k for k, v in record.data.items() if rerun.data.get(k) not in (None, v)]
    if changed:
        base.reason = f"data changed: the DataLoader {changed[0]} returned different data"
        return base
    verdict, deltas, compared = compare_metrics(record, rerun, rtol, atol)
    base.verdict, base.differences, base.compared = verdict, deltas, compared
    return base
