"""The code of a script outside any git repository: a bounded copy of its folder.

Python files (and the job file) below the script's folder enter the run's artifacts under
``code/snapshot/``; what is over the bound is named, with its size and hash, in the code manifest
and in a warning, so a reader knows the snapshot is partial.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ml_experiment.tracking.vcs import file_digest

MAX_BYTES = 2 * 1024 * 1024  # all files together
MAX_FILES = 500
_MAX_VISITED = 5000  # entries walked: a script in a home folder must not walk the disk
_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "mlartifacts", "build", "dist"}


def snapshot(
    script: Path, job_file: Path | None = None, exclude: tuple[Path, ...] = ()
) -> tuple[dict[str, bytes], dict[str, dict[str, object]]]:
    """The script folder's Python files and the job file, within the bound.

    Returns:
        ``(files, left_out)``: relative path -> content, and relative path -> ``{"bytes",
        "sha256"}`` of the files over the bound. The job file, when outside the folder, is
        stored as ``_job/<name>``.
    """
    root = script.parent.resolve()
    found = _python_files(root, tuple(p.resolve() for p in exclude))
    wanted: list[tuple[str, Path]] = [(p.relative_to(root).as_posix(), p) for p in found]
    if job_file is not None and job_file.is_file():
        job = job_file.resolve()
        rel = job.relative_to(root).as_posix() if job.is_relative_to(root) else f"_job/{job.name}"
        if rel not in dict(wanted):
            wanted.append((rel, job))
    # The script itself and the job file first: they are what a re-run needs most.
    first = {script.resolve(), job_file.resolve() if job_file else None}
    wanted.sort(key=lambda item: (item[1] not in first, item[0]))
    files: dict[str, bytes] = {}
    left_out: dict[str, dict[str, object]] = {}
    total = 0
    for rel, path in wanted:
        size = path.stat().st_size
        if len(files) >= MAX_FILES or total + size > MAX_BYTES:
            left_out[rel] = {"bytes": size, "sha256": file_digest(path)}
            continue
        files[rel] = path.read_bytes()
        total += size
    if left_out:
        names = ", ".join(list(left_out)[:10]) + (", ..." if len(left_out) > 10 else "")
        print(
            f"ml-experiment: warning: the code snapshot of {root} (not a git repository) leaves "
            f"out {len(left_out)} file(s) over its bound of {MAX_FILES} files / {MAX_BYTES} "
            f"bytes: {names}; they are listed in code/manifest.json",
            file=sys.stderr,
            flush=True,
        )
    return files, left_out


def _python_files(root: Path, exclude: tuple[Path, ...]) -> list[Path]:
    out: list[Path] = []
    visited = 0
    for folder, dirnames, filenames in os.walk(root):
        here = Path(folder)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".")
            and d not in _SKIP_DIRS
            and not (here / d / "pyvenv.cfg").exists()  # a virtual environment
            and (here / d).resolve() not in exclude
        )
        for name in sorted(filenames):
            visited += 1
            if name.endswith(".py") and not (here / name).is_symlink():
                out.append(here / name)
        if visited > _MAX_VISITED:
            break
    return out
