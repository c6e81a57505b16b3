"""Shared fixtures: a private knowledge center per test, one local Ray per session, the real CLI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests import services

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("ML_EXPERIMENT_NO_PROGRESS", "1")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
# The console script installed next to this interpreter (what a user types).
CLI = [str(Path(sys.executable).parent / "ml-experiment")]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory: the default knowledge center lands here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The installed command, in a fresh process, as a user would run it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def client(workdir: Path) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{workdir / 'mlruns.db'}")


def all_runs(c: Any, experiment: str) -> list[Any]:
    from mlflow.entities import ViewType

    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return list(c.search_runs([exp.experiment_id], run_view_type=ViewType.ALL, max_results=5000))


def artifact_text(c: Any, run_id: str, path: str) -> str:
    dest = tempfile.mkdtemp(prefix="mlx-art-")
    try:
        local = c.download_artifacts(run_id, path, dest)
        return Path(local).read_text()
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def artifact_paths(c: Any, run_id: str, path: str | None = None) -> list[str]:
    out: list[str] = []
    for f in c.list_artifacts(run_id, path):
        out.extend(artifact_paths(c, run_id, f.path) if f.is_dir else [f.path])
    return out


@pytest.fixture
def fresh_private_gates(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Version gates and warn-once state of ``ml_experiment._private``, fresh for one test.

    Cleared again afterwards: a gate a test computed under a patched range must not reach the
    next test in the same process (which one that is depends on the order, e.g. under xdist).
    """
    from ml_experiment import _private

    _private.supported.cache_clear()
    monkeypatch.setattr(_private, "_warned", set())
    yield
    _private.supported.cache_clear()


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One private local Ray instance (2 CPUs) for the in-process group tests of a session.

    Started here, before any group runs, so a job's ``ray_config`` (num_cpus, address, ...) is
    ignored by in-process groups: they join this Ray. Its worker pool carries over from test to
    test, so assert nothing that depends on which workers earlier tests left. ``ray_config`` is
    covered through the installed command, which starts its own Ray
    (tests/e2e/test_group.py::test_ray_config_sizes_the_ray_the_command_starts).
    """
    import ray

    temp = tempfile.mkdtemp(prefix="mlx-ray-t-")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=temp,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


# -- real services on 127.0.0.1 (tests/services.py) ---------------------------------------------
@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 with its own SQLite store and artifact folder."""
    store = tmp_path / "server"
    store.mkdir(exist_ok=True)
    with services.mlflow_server(store) as url:
        yield url


@pytest.fixture(scope="session")
def postgres() -> Iterator[services.Postgres]:
    """A private PostgreSQL server for the session; its base URL (``.database(name)``)."""
    try:
        with services.postgres_server() as server:
            yield server
    except services.Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def pg_database(postgres: services.Postgres, request: pytest.FixtureRequest) -> str:
    """A fresh database on the session's PostgreSQL; its URL."""
    import re

    return postgres.database("t_" + re.sub(r"\W", "_", request.node.name.lower())[:50])


@pytest.fixture
def client_at() -> Any:
    """A client on the default knowledge center of any folder: ``client_at(folder)``."""
    from mlflow.tracking import MlflowClient

    return lambda folder: MlflowClient(f"sqlite:///{folder / 'mlruns.db'}")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """SeaweedFS's S3 API on loopback with a bucket ``mlflow``; the client settings."""
    try:
        with services.s3_server() as env:
            yield env
    except services.Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def team_server(
    postgres: services.Postgres, s3_server: dict[str, str], tmp_path: Path
) -> Iterator[str]:
    """``mlflow server`` on PostgreSQL with its artifacts in S3 (the team stack); its URL."""
    backend = postgres.database("mlflow_stack").replace("postgresql://", "postgresql+psycopg://")
    cwd = tmp_path / "team-server"
    cwd.mkdir()
    with services.mlflow_server(
        cwd, backend=backend, artifacts="s3://mlflow/artifacts", env=s3_server, timeout=180
    ) as url:
        yield url


@pytest.fixture
def grpc_proxy(pg_database: str) -> Iterator[str]:
    """Optuna's gRPC storage proxy in front of a fresh PostgreSQL database; its URL."""
    port = services.free_port()
    code = (
        "import sys, optuna; from ml_experiment.hpo import open_storage; "
        "optuna.storages.run_grpc_proxy_server(open_storage(sys.argv[1]), host='127.0.0.1', "
        "port=int(sys.argv[2]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, pg_database, str(port)],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while True:  # ready when it accepts connections
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None and time.time() < deadline, "the gRPC proxy did not start"
            time.sleep(0.3)
        yield f"grpc://127.0.0.1:{port}"
    finally:
        services.stop_process(proc)
