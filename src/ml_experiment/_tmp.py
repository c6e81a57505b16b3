"""Private temporary folders (0700) that name their owner, and removal of those a dead owner left.

A process killed with SIGKILL cannot remove its temporary folders; each one made here records the
owner's pid and start time, so the next start can remove exactly those whose owner is gone (a pid
alone could have been reused by another process).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

OWNER_FILE = ".mlx-owner"
PREFIX = "mlx-"
_cleaned = False


def _start_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


def make_private_dir(prefix: str = PREFIX) -> Path:
    """A new folder in the temp dir, mode 0700, recording this process as its owner.

    The first call in a process also removes the folders that killed processes left.
    """
    global _cleaned
    if not _cleaned:
        _cleaned = True
        remove_stale()
    path = Path(tempfile.mkdtemp(prefix=prefix))  # mkdtemp: 0700, owned by us
    os.chmod(path, 0o700)
    (path / OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid()) or 0:.3f}\n")
    return path


@contextlib.contextmanager
def private_dir(prefix: str = PREFIX) -> Iterator[Path]:
    """``make_private_dir`` removed on exit (SIGKILL aside: ``remove_stale`` does that later)."""
    path = make_private_dir(prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _owner_alive(owner: str) -> bool:
    try:
        pid_text, started_text = owner.split()
        pid, started = int(pid_text), float(started_text)
    except ValueError:
        return True  # not ours to judge
    now = _start_time(pid)
    return now is not None and abs(now - started) < 1.0


def remove_stale(prefix: str = PREFIX, base: str | Path | None = None) -> list[Path]:
    """Remove ``<prefix>*`` folders of this user whose recorded owner process is gone.

    Folders without an owner record (made by older versions, or this very moment) are kept.
    """
    removed: list[Path] = []
    root = Path(base or tempfile.gettempdir())
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            st = entry.lstat()
            if not entry.is_dir() or entry.is_symlink() or st.st_uid != os.getuid():
                continue
            owner = (entry / OWNER_FILE).read_text()
        except OSError:
            continue
        if not _owner_alive(owner):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def cache_dir() -> Path:
    """What is kept between commands (wheelhouses, the empty store's schema):
    ``ML_EXPERIMENT_CACHE_DIR``, else ~/.cache/ml-experiment."""
    root = os.environ.get("ML_EXPERIMENT_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ml-experiment"
