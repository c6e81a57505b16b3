"""Ray started beside the driver: it lives until closed, and errors on either side still surface.

Each test runs in its own process: the suite's session Ray (``ray_local``) would make
``RayStart`` use that one instead of starting its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import run_cli, write
from tests.services import free_port

from ml_experiment import _private_ray
from ml_experiment._output import VERBOSE

pytestmark = pytest.mark.slow

LIFECYCLE = """
import json, os, sys, time
from types import SimpleNamespace

import psutil

from ml_experiment.config._models import RayConfig
from ml_experiment.execution._startup import Phases, RayStart

from ml_experiment._output import shown

phases = Phases()
rc = RayConfig(num_cpus=1, **json.loads(sys.argv[2]))
start = RayStart(SimpleNamespace(ray_config=rc), phases)
with shown(int(sys.argv[1])):  # the thread takes its verbosity from here
    start.start()
start.ready()
import ray

# Ray's local processes die with the thread that started them (PR_SET_PDEATHSIG): that thread
# must outlive ray.init. A task a while after the start shows they are alive.
time.sleep(1.0)

@ray.remote
def pid():
    return os.getpid(), os.environ.get("GRPC_ENABLE_FORK_SUPPORT")

worker, worker_grpc_fork = ray.get(pid.remote(), timeout=120)
grpc_fork = [os.environ.get("GRPC_ENABLE_FORK_SUPPORT"), worker_grpc_fork]
tree = psutil.Process().children(recursive=True)
commands = [" ".join(p.cmdline()) for p in tree]
start.close()
time.sleep(0.5)
alive = [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
print(json.dumps({
    "worker": worker, "me": os.getpid(), "children": len(tree), "alive": alive,
    "initialized": ray.is_initialized(), "phases": sorted(phases.spans), "commands": commands,
    "grpc_fork": grpc_fork,
}))
"""


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A private TMPDIR, short enough for Ray's Unix socket paths."""
    path = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _lifecycle(tmp: Path, verbosity: int = 0, **ray_config: object) -> dict:
    env = {**os.environ, "TMPDIR": str(tmp), "RAY_USAGE_STATS_ENABLED": "0"}
    res = subprocess.run(
        [sys.executable, "-c", LIFECYCLE, str(verbosity), json.dumps(ray_config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out: dict = json.loads(res.stdout.strip().splitlines()[-1])
    out["stderr"] = res.stderr
    return out


def _started(out: dict) -> set[str]:
    """Which of Ray's optional processes ran: its API server and its two monitors."""
    scripts = {"dashboard/dashboard.py": "api", "/monitor.py": "monitor", "log_monitor.py": "logs"}
    return {name for c in out["commands"] for script, name in scripts.items() if script in c}


def test_ray_started_on_its_thread_serves_tasks_and_is_gone_after_close(short_tmp: Path) -> None:
    out = _lifecycle(short_tmp)
    assert out["worker"] != out["me"]
    assert out["children"] >= 3  # GCS, raylet, a worker at least
    assert out["alive"] == [], "Ray processes outlived close()"
    assert out["initialized"] is False
    assert {"ray_start", "ray_shutdown"} <= set(out["phases"])
    assert not list(short_tmp.glob("mlx-ray-*")), "its private folder was not removed"
    assert "SIGTERM handler" not in out["stderr"]  # Ray's warning for a non-main thread is quiet
    assert out["grpc_fork"] == ["false", "false"]  # grpcio's fork handlers off: driver, workers
    if _private_ray._ray_tested():  # what a private node does not use is not started
        assert _started(out) == set(), out["commands"]


@pytest.mark.skipif(not _private_ray._ray_tested(), reason="stock ray.init on an untested Ray")
def test_ray_started_for_output_or_a_dashboard_starts_what_they_need(short_tmp: Path) -> None:
    """-v forwards the workers' output (Ray's log monitor); a dashboard asked for is started."""
    assert _started(_lifecycle(short_tmp, VERBOSE)) == {"logs"}
    port = free_port()
    out = _lifecycle(
        short_tmp, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port
    )
    assert _started(out) == {"api"}, out["commands"]


def test_bad_input_found_while_ray_starts_is_one_line_and_leaves_no_ray(
    tmp_path: Path, short_tmp: Path
) -> None:
    """A name taken by an experiment is found once the store is open: Ray is starting by then."""
    from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

    folder = tmp_path / "kc"
    write(
        folder / "s.py",
        "from ml_experiment import job\n\n@job\ndef main(x=0.0):\n    return {'y': x}\n",
    )
    MLflowTracker(KnowledgeCenter.resolve(None, cwd=folder)).experiment_id("taken", "experiment")
    job = write(
        folder / "g.yaml",
        textwrap.dedent(
            """
            name: taken
            kind: group
            report: false
            num_trials: 2
            param_space:
              x: uniform(0, 1)
            metric: {name: y, direction: maximize}
            ray_config: {num_cpus: 1}
            run: [s.py]
            """
        ),
    )
    timings = tmp_path / "timings.json"
    env = {**os.environ, "TMPDIR": str(short_tmp), "ML_EXPERIMENT_TIMINGS": str(timings)}
    res = run_cli("run", str(job), cwd=folder, env=env)
    assert res.returncode == 2, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "already taken by experiment runs" in lines[0], res.stderr
    phases = json.loads(timings.read_text())
    assert phases["ray_start"][0] < phases["store"][1]  # Ray was starting when it was found
    assert "ray_shutdown" in phases and "parent_run" not in phases
    assert not (folder / "optuna-studies.journal").exists(), "a study was started"
    assert not list(short_tmp.glob("mlx-ray-*")), "Ray's folder was left behind"


REFUSED = """
import psutil
from types import SimpleNamespace

from ml_experiment.config._models import RayConfig
from ml_experiment.execution._startup import RayStart

start = RayStart(SimpleNamespace(ray_config=RayConfig(num_cpus=1, object_store_memory=1)))
start.start()
try:
    start.ready()
except ValueError as exc:
    print("refused:", exc)
start.close()
# Killed ones may still be exiting: give them the time they take, not more.
_, left = psutil.wait_procs(psutil.Process().children(recursive=True), timeout=10)
print("alive:", [p.pid for p in left])
"""


def test_a_start_ray_refuses_leaves_neither_processes_nor_its_folder(short_tmp: Path) -> None:
    env = {**os.environ, "TMPDIR": str(short_tmp), "RAY_USAGE_STATS_ENABLED": "0"}
    res = subprocess.run(
        [sys.executable, "-c", REFUSED], env=env, capture_output=True, text=True, timeout=300
    )
    assert "refused: Attempting to cap object store memory" in res.stdout, res.stderr[-3000:]
    assert "alive: []" in res.stdout
    assert not list(short_tmp.glob("mlx-ray-*")), "Ray's folder was left behind"
