"""Private temp folders: 0700, owner recorded, removed once their owner process is gone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ml_experiment._tmp import OWNER_FILE, make_private_dir, private_dir, remove_stale


def test_private_dir_is_0700_names_its_owner_and_goes_away() -> None:
    with private_dir("mlx-unit-") as path:
        assert path.stat().st_mode & 0o777 == 0o700
        pid = int((path / OWNER_FILE).read_text().split()[0])
        assert pid == os.getpid()
        assert remove_stale("mlx-unit-") == []  # its owner is alive: kept
        assert path.exists()
    assert not path.exists()


def test_folders_of_dead_owners_are_removed_others_kept(tmp_path: Path) -> None:
    # A real dead owner: a child process that made the folder and was killed with SIGKILL.
    code = (
        "import os, sys, signal; from ml_experiment._tmp import make_private_dir\n"
        "import tempfile; tempfile.tempdir = sys.argv[1]\n"
        "print(make_private_dir('mlx-ray-'), flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
    )
    dead = Path(res.stdout.strip())
    assert dead.is_dir() and dead.parent == tmp_path, res
    unowned = tmp_path / "mlx-old"  # made by an older version: no owner record, kept
    unowned.mkdir()
    reused = tmp_path / "mlx-reused"  # our pid, another start time: a reused pid, removed
    reused.mkdir()
    (reused / OWNER_FILE).write_text(f"{os.getpid()} 12.0\n")
    alive = make_private_dir("mlx-live-")
    try:
        removed = remove_stale("mlx-", base=tmp_path)
        assert sorted(removed) == sorted([dead, reused])
        assert unowned.exists() and alive.exists()
    finally:
        shutil.rmtree(alive, ignore_errors=True)


def test_a_live_owner_is_kept_when_the_wall_clock_moves(tmp_path: Path, monkeypatch) -> None:
    """psutil's create_time moves with the wall clock's boot time; the owner record does not."""
    import ml_experiment._tmp as tmp_module

    alive = make_private_dir("mlx-live-")
    try:
        record = (alive / OWNER_FILE).read_text().split()
        if not record[1].startswith("ticks:"):
            pytest.skip("no /proc: the start time is psutil's create_time")
        shutil.move(str(alive), str(tmp_path / alive.name))
        alive = tmp_path / alive.name
        real = tmp_module._start_time
        monkeypatch.setattr(tmp_module, "_start_time", lambda pid: (real(pid) or 0) + 1.0)
        reused = tmp_path / "mlx-reused"  # our pid, another start: removed
        reused.mkdir()
        (reused / OWNER_FILE).write_text(f"{os.getpid()} ticks:{int(record[1][6:]) + 1}\n")
        assert remove_stale("mlx-", base=tmp_path) == [reused]
        assert alive.exists()
    finally:
        shutil.rmtree(alive, ignore_errors=True)
