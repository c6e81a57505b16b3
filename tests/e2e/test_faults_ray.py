"""A local group's Ray: loopback only, private temp folders, and what a SIGKILL leaves behind."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from tests.conftest import CLI, run_cli, write
from tests.services import open_sockets, process_tree

SCRIPT = """
import os, time
from pathlib import Path
from ml_experiment import job

@job
def main(x: float = 0.5):
    Path(os.environ["MLX_TEST_MARK"]).write_text("running")
    time.sleep(float(os.environ.get("MLX_TEST_SLEEP", "0")))
    return {"score": x}
"""


def _group(folder: Path, name: str) -> Path:
    return write(
        folder / f"{name}.yaml",
        f"""
        name: {name}
        kind: group
        report: false
        num_trials: 1
        param_space:
          x: uniform(0, 1)
        metric: {{name: score, direction: maximize}}
        resources_per_worker: {{cpu: 1}}
        ray_config: {{num_cpus: 1}}
        run:
          - s.py
        """,
    )


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A private TMPDIR, short enough for Ray's Unix socket paths (107 bytes at most)."""
    path = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


@pytest.mark.slow
def test_local_group_listens_on_loopback_only_and_cleans_up_after_sigkill(
    tmp_path: Path, short_tmp: Path
) -> None:
    folder = tmp_path / "kc"
    write(folder / "s.py", SCRIPT)
    mark = tmp_path / "running"
    env = {
        **os.environ,
        "TMPDIR": str(short_tmp),
        "MLX_TEST_MARK": str(mark),
        "MLX_TEST_SLEEP": "600",
    }
    proc = subprocess.Popen(
        [*CLI, "run", str(_group(folder, "held"))],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not mark.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the trial never started"
            time.sleep(0.2)
        time.sleep(1.0)  # every Ray process is up while a trial runs
        procs = process_tree(proc.pid)
        sockets = open_sockets(procs)
        assert sockets, "no listening socket found: the probe itself is broken"
        exposed = {k: v for k, v in sockets.items() if not _loopback(k[0])}
        assert not exposed, f"open on a non-loopback interface: {exposed}"

        ray_dirs = [p for p in short_tmp.glob("mlx-ray-*") if p.is_dir()]
        assert len(ray_dirs) == 1, list(short_tmp.iterdir())
        assert ray_dirs[0].stat().st_mode & 0o777 == 0o700
        for path in short_tmp.glob("mlx-*"):
            assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
        # the running trial's console log lives in a private folder that names its worker
        logs = list(short_tmp.glob("mlx-trial-*/console.log"))
        assert len(logs) == 1 and not list(short_tmp.glob("*.log")), list(short_tmp.iterdir())
    finally:
        for p in process_tree(proc.pid)[::-1]:  # the whole tree: Ray's daemons too
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        if proc.stderr:
            proc.stderr.close()
    assert ray_dirs[0].exists()  # a SIGKILL leaves it behind

    env["MLX_TEST_SLEEP"] = "0"
    res = run_cli("run", str(_group(folder, "next")), cwd=folder, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not ray_dirs[0].exists(), "the next start did not remove the dead run's Ray folder"
    assert not list(short_tmp.glob("mlx-ray-*"))  # and its own is gone too
    assert not logs[0].parent.exists(), "the killed trial's console folder was left"
    assert not list(short_tmp.glob("**/*.log")), list(short_tmp.rglob("*"))
