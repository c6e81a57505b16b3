"""The recorded code of a run, re-created in a folder of its own: commit + patch, or the snapshot.

The user's working tree, index and branches are never touched: the commit is read from the
repository's object database (``git archive``) and the patch applied in the new folder.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from ml_experiment.exceptions import MLExperimentError
from ml_experiment.tracking.record import SNAPSHOT_DIR, TAG_SNAPSHOT, RunRecord


class CannotReproduce(MLExperimentError):
    """The input is valid but the record (or this machine) is not enough to re-run the run."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"cannot reproduce: {reason}")


def code_root(record: RunRecord) -> Path | None:
    """The folder the recorded code lived in: the git root, or the snapshot's script folder."""
    if record.code.get("commit") and record.code.get("root"):
        return Path(record.code["root"])
    source = record.code.get("source")
    return Path(source).parent if source else None


def relocate(path: str | Path, record: RunRecord, dest: Path) -> Path | None:
    """Where ``path`` of the original run is in the materialised code (None: outside it)."""
    root = code_root(record)
    if root is None:
        return None
    try:
        return dest / Path(path).relative_to(root)
    except ValueError:
        return None


def materialise(record: RunRecord, dest: Path, *, tracking_uri: str | None = None) -> Path:
    """Write the code of ``record`` as it ran into ``dest``; return ``dest``.

    Raises:
        CannotReproduce: no code version recorded, the commit is not in the repository, or the
            patch does not apply.
    """
    dest.mkdir(parents=True, exist_ok=True)
    commit = record.code.get("commit")
    if commit:
        _checkout(record, commit, dest)
    elif TAG_SNAPSHOT in record.tags:
        _snapshot(record, dest, tracking_uri)
    else:
        raise CannotReproduce(
            f"run {record.run_id} recorded no code version (no git commit and no code snapshot)"
        )
    return dest


def _git(*args: str, cwd: Path, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
    # Never find a repository above the materialised folder (git apply would patch that one).
    env["GIT_CEILING_DIRECTORIES"] = str(cwd.parent)
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(key, None)
    git = shutil.which("git")
    if git is None:
        raise CannotReproduce("git is not installed, and the run's code is a git commit")
    return subprocess.run(
        [git, *args], cwd=cwd, env=env, input=data, capture_output=True, timeout=300, check=False
    )


def _checkout(record: RunRecord, commit: str, dest: Path) -> None:
    root = Path(record.code.get("root") or "")
    if not (root / ".git").exists():
        raise CannotReproduce(f"the repository {root} of commit {commit[:12]} is not here")
    found = _git("cat-file", "-e", f"{commit}^{{commit}}", cwd=root)
    if found.returncode != 0:
        raise CannotReproduce(f"commit {commit[:12]} is not in the repository {root}")
    archive = _git("archive", "--format=tar", commit, cwd=root)
    if archive.returncode != 0:
        raise CannotReproduce(f"git archive {commit[:12]} failed: {_first(archive.stderr)}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    patch = record.code.get("patch")
    if patch:
        applied = _git(
            "apply", "--binary", "--whitespace=nowarn", "-", cwd=dest, data=patch.encode()
        )
        if applied.returncode != 0:
            raise CannotReproduce(
                f"the recorded patch does not apply on commit {commit[:12]}: "
                f"{_first(applied.stderr)}"
            )


def _snapshot(record: RunRecord, dest: Path, tracking_uri: str | None) -> None:
    from ml_experiment.reproduce._read import open_client

    client, _ = open_client(tracking_uri)
    download = dest / ".mlx-download"
    download.mkdir()
    try:
        local = Path(client.download_artifacts(str(record.run_id), SNAPSHOT_DIR, str(download)))
    except Exception as exc:
        raise CannotReproduce(
            f"the code snapshot of run {record.run_id} cannot be read: {exc}"
        ) from None
    for item in list(local.iterdir()):  # download_artifacts keeps the artifact's path
        shutil.move(str(item), dest / item.name)
    shutil.rmtree(download, ignore_errors=True)
    if record.code_manifest:
        left = ", ".join(list(record.code_manifest)[:5])
        raise CannotReproduce(f"the code snapshot left files out (over its bound): {left}")


def _first(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[0] if lines else "no message"
