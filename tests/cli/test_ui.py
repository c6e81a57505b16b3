"""``ml-experiment ui`` stopped by SIGTERM (``kill``, a service manager) stops its MLflow server."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from tests.conftest import CLI
from tests.services import free_port


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_sigterm_stops_the_server_and_frees_the_port(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "ui", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the MLflow UI never answered"
            time.sleep(0.5)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children  # the server and its workers

        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        assert "stopped" in err and "Traceback" not in err
        _, alive = psutil.wait_procs(children, timeout=20)
        assert alive == [], [p.cmdline() for p in alive]
        assert not _port_in_use(port)
    finally:
        if proc.poll() is None:
            proc.kill()
        for child in children:  # what a failed test would otherwise leave holding the port
            if child.is_running():
                child.kill()
