"""Private temporary folders (0700) that name their owner, and removal of those a dead owner left.

A process killed with SIGKILL cannot remove its temporary folders; each one made here records the
owner's pid and start time, so the next start can remove exactly those whose owner is gone (a pid
alone could have been reused by another process). On Linux the start time is the kernel's count
of clock ticks since boot: psutil's ``create_time`` adds the boot time of ``/proc/stat``, whole
seconds derived from the wall clock, which moves by a second when the clock is adjusted (and by
hours when a virtual machine resumes), and a live owner would then look gone.
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


def _ticks(pid: int) -> str | None:
    """The process's start in clock ticks after boot (Linux), None if unknown or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat.rsplit(b")", 1)[1].split()[19].decode()  # field 22; the name may hold ")"
    except (OSError, IndexError, UnicodeDecodeError):
        return None


def _start_mark(pid: int) -> str:
    ticks = _ticks(pid)
    return f"ticks:{ticks}" if ticks is not None else f"{_start_time(pid) or 0:.3f}"


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
    (path / OWNER_FILE).write_text(f"{os.getpid()} {_start_mark(os.getpid())}\n")
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
        pid = int(pid_text)
        if started_text.startswith("ticks:"):
            ticks = _ticks(pid)
            if ticks is None:  # gone, or its start cannot be read: keep the folder of a live pid
                import psutil

                return bool(psutil.pid_exists(pid))
            return ticks == started_text.removeprefix("ticks:")
        started = float(started_text)  # recorded by an older version, or where /proc is not
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
