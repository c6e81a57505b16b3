"""A private Docker engine for the session and a Python base image built from Debian's packages.

``dockerd`` runs as root with its own data root, socket and pid file in a temporary folder, no
bridge and no iptables (containers use ``--network none`` or the host's); it is stopped by its
PID at the session's end. No registry is reachable, so the base image is ``debootstrap``'s
minimal Debian with Python, imported with ``docker import``; its root filesystem tarball and
the project's wheelhouse are cached in /tmp by day, for the next session.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BASE_IMAGE = "mlx-test-base:bookworm"
CACHE = Path(tempfile.gettempdir()) / f"mlx-docker-test-cache-{os.getuid()}"


def _why_no_engine() -> str | None:
    for tool in ("dockerd", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install-test-system-deps.sh installs it)"
    if os.getuid() != 0:
        return "a private dockerd needs root"
    try:
        import docker  # noqa: F401
    except ImportError:
        return "the docker package is not installed (pip install 'ml-experiment[docker]')"
    return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # dockerd stops its containers and its containerd
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    """``DOCKER_HOST`` of a dockerd started for this session (skips when none can start)."""
    why = _why_no_engine()
    if why is not None:
        pytest.skip(f"no Docker engine for the tests: {why}")
    import docker

    # Short paths: containerd's sockets live under the exec root (108-byte limit).
    root = Path(tempfile.mkdtemp(prefix="mlxd-"))
    host = f"unix://{root}/docker.sock"
    cmd = [
        "dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false",
        "--data-root", str(root / "data"), "--exec-root", str(root / "x"),
        "--pidfile", str(root / "docker.pid"), "-H", host,
    ]  # fmt: skip
    log = (root / "dockerd.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                docker.DockerClient(base_url=host, timeout=10).ping()
                break
            except Exception:
                if proc.poll() is not None or time.time() > deadline:
                    tail = (root / "dockerd.log").read_text(errors="replace")[-500:]
                    pytest.skip(f"dockerd could not start: {' '.join(tail.split())}")
                time.sleep(0.5)
        yield host
    finally:
        _stop(proc)
        log.close()
        _unmount_below(root)
        shutil.rmtree(root, ignore_errors=True)


def _unmount_below(root: Path) -> None:
    """What dockerd left mounted under ``root`` (its data root, its default netns): rmtree stops
    at a mount point, and the folder would stay in /tmp."""
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((p for p in points if p.startswith(f"{root}/")), key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True, check=False)


def _rootfs_tarball() -> Path:
    """Debian bookworm minbase with python3, venv, pip and git, cached for the day."""
    from filelock import FileLock

    day = CACHE / datetime.date.today().isoformat()
    tar = day / "bookworm-python.tar"
    day.mkdir(parents=True, exist_ok=True)
    with FileLock(str(day / ".lock")):
        if tar.is_file():
            return tar
        for old in CACHE.iterdir():
            if old != day and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        rootfs = Path(tempfile.mkdtemp(prefix="mlx-rootfs-", dir=day))
        try:
            subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,python3-pip,git",
                 "bookworm", str(rootfs), "http://deb.debian.org/debian"],
                check=True, capture_output=True, timeout=900,
            )  # fmt: skip
            part = tar.with_suffix(".part")
            subprocess.run(
                ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(part), "."], check=True
            )
            part.rename(tar)
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)
    return tar


@pytest.fixture(scope="session")
def docker_env(docker_host: str) -> dict[str, str]:
    """Environment for the command: the private engine, and the day's wheelhouse cache."""
    (CACHE / "ml-experiment").mkdir(parents=True, exist_ok=True)
    return {"DOCKER_HOST": docker_host, "ML_EXPERIMENT_CACHE_DIR": str(CACHE / "ml-experiment")}


@pytest.fixture(scope="session")
def engine(docker_host: str) -> Any:
    import docker

    return docker.DockerClient(base_url=docker_host, timeout=600)


@pytest.fixture(scope="session")
def base_image(engine: Any) -> str:
    """The Python base image, in this session's engine (imported from the cached tarball)."""
    tar = _rootfs_tarball()
    repo, _, tag = BASE_IMAGE.partition(":")
    engine.api.import_image_from_file(str(tar), repository=repo, tag=tag)
    return BASE_IMAGE
