"""The code version of a run: git commit, branch, dirty flag and the uncommitted changes as a patch.

The patch (tracked changes against HEAD plus untracked, not ignored, source files as new-file
hunks) can be applied on a checkout of the commit with ``git apply`` to get the exact code that
ran. Untracked files that are not source (data, models, logs) or too large are listed by name, size
and hash in a manifest instead; the knowledge center's own files are never part of either.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

__all__ = ["GitInfo", "git_info"]

_TIMEOUT_S = 10.0  # per git command
_UNTRACKED_DEADLINE_S = 30.0  # all untracked files together
_MAX_UNTRACKED_BYTES = 5 * 1024 * 1024
_MAX_UNTRACKED_FILES = 1000  # one git process per file: keep the total time bounded
_MAX_TRACKED_DIFF_CHARS = 50 * 1024 * 1024
_MAX_SOURCE_FILE_BYTES = 1024 * 1024  # an untracked "source" file larger than this is data
_MAX_HASHED_BYTES = 64 * 1024 * 1024  # manifest entries above this are listed by size only
# Untracked files with these suffixes (or names) are code and enter the patch.
SOURCE_SUFFIXES = frozenset(
    [
        ".py",
        ".pyi",
        ".pyx",
        ".pxd",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".cu",
        ".sh",
        ".r",
        ".jl",
        ".sql",
        ".ipynb",
        ".yaml",
        ".yml",
        ".json",
        ".toml",
        ".cfg",
        ".ini",
        ".txt",
        ".md",
        ".rst",
    ]
)
SOURCE_NAMES = frozenset({"Dockerfile", "Makefile", "MANIFEST.in"})

# Neutralise user configuration that would change the patch format (colour, prefixes, external
# diff tools, textconv filters) so the patch always applies with `git apply`.
_GIT_CONFIG = (
    "-c",
    "color.ui=false",
    "-c",
    "diff.noprefix=false",
    "-c",
    "diff.mnemonicPrefix=false",
    "-c",
    "core.quotePath=true",
)
_DIFF_FLAGS = (
    "--binary",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)


@dataclass
class GitInfo:
    """The git state of the code a run executed.

    Attributes:
        commit: Full hash of HEAD, or None in a repository without commits.
        branch: Current branch name, or None when HEAD is detached.
        dirty: True when there are uncommitted changes, untracked (not ignored) files included.
        diff: Patch of the uncommitted changes against HEAD (may be empty).
        root: Absolute path of the working tree's top-level folder.
        remote: URL of the ``origin`` remote (else the first remote), credentials stripped.
        manifest: Untracked files left out of the patch: path -> ``{"bytes", "sha256"}``.
    """

    commit: str | None
    branch: str | None
    dirty: bool
    diff: str
    root: str | None
    remote: str | None
    manifest: dict[str, dict[str, object]] | None = None


def is_source(name: str) -> bool:
    """Whether an untracked file is code (enters the patch) rather than data (the manifest)."""
    path = Path(name)
    return path.suffix.lower() in SOURCE_SUFFIXES or path.name in SOURCE_NAMES


def file_digest(path: Path, limit: int = _MAX_HASHED_BYTES) -> str | None:
    """SHA-256 of a file read in chunks, or None when it is larger than ``limit``."""
    if path.stat().st_size > limit:
        return None
    from ml_experiment.tracking.fingerprint import file_fingerprint

    return file_fingerprint(path)


def git_info(path: str | Path, exclude: Iterable[str | Path] = ()) -> GitInfo | None:
    """Describe the git repository containing ``path``.

    Args:
        path: A file or folder inside the working tree.
        exclude: Files and folders that are never code (the knowledge center's store, artifact
            folder and study journal); a file also excludes its siblings named ``file*``
            (``mlruns.db-wal``, ``mlruns.db.lock``).

    Returns:
        The repository's state, or None when ``path`` is not in a git working tree, git is not
        installed, or git fails. Never raises.
    """
    try:
        return _git_info(Path(path), [Path(p).resolve() for p in exclude])
    except Exception:
        return None


def _excluded(root: Path, exclude: list[Path]) -> tuple[list[str], list[str]]:
    """Pathspecs that leave ``exclude`` out of a diff, and the repository-relative prefixes."""
    specs: list[str] = []
    prefixes: list[str] = []
    for item in exclude:
        try:
            rel = item.relative_to(root).as_posix()
        except ValueError:
            continue  # outside the repository: git never sees it
        if item.is_dir():
            specs.append(f":(exclude,top,literal){rel}")
            prefixes.append(rel + "/")
        else:
            specs.append(f":(exclude,top,glob){rel}*")
            prefixes.append(rel)
    return specs, prefixes


def _git_info(path: Path, exclude: list[Path]) -> GitInfo | None:
    git = shutil.which("git")
    if git is None:
        return None
    folder = path if path.is_dir() else path.parent
    if not folder.is_dir():
        return None

    top = _git(git, folder, "rev-parse", "--show-toplevel")
    if top is None or top.returncode != 0 or not top.stdout.strip():
        return None
    root = Path(top.stdout.decode("utf-8", "surrogateescape").strip())

    head = _git(git, root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    commit = _text(head) if head is not None and head.returncode == 0 else None

    ref = _git(git, root, "symbolic-ref", "--quiet", "--short", "HEAD")
    branch = _text(ref) if ref is not None and ref.returncode == 0 else None

    specs, prefixes = _excluded(root, exclude)
    # Without commits, diff against the empty tree: staged files then show as new files.
    base = commit or _empty_tree(git, root)
    parts: list[str] = []
    if base is not None:
        tracked = _git(git, root, "diff", *_DIFF_FLAGS, base, "--", ".", *specs)
        if tracked is not None and tracked.returncode == 0:
            text = _decode(tracked.stdout)
            if len(text) > _MAX_TRACKED_DIFF_CHARS:
                text = text[:_MAX_TRACKED_DIFF_CHARS] + (
                    f"\n# ml-experiment: diff truncated at {_MAX_TRACKED_DIFF_CHARS} characters\n"
                )
            parts.append(text)

    untracked = [
        name for name in _untracked_files(git, root) if not name.startswith(tuple(prefixes))
    ]
    sources = [n for n in untracked if is_source(n) and _size(root / n) <= _MAX_SOURCE_FILE_BYTES]
    parts.append(_untracked_patch(git, root, sources))
    diff = "".join(part for part in parts if part)
    others = [n for n in untracked if n not in set(sources)]

    return GitInfo(
        commit=commit,
        branch=branch,
        # "dirty" means the code differs: data files beside it are in the manifest only.
        dirty=bool(diff) or any(is_source(n) for n in untracked),
        diff=diff,
        root=str(root),
        remote=_remote(git, root),
        manifest=manifest(root, others),
    )


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def manifest(root: Path, names: list[str]) -> dict[str, dict[str, object]]:
    """Name, size and hash of each file (the first 1000; larger ones by size only)."""
    out: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + _UNTRACKED_DEADLINE_S
    for index, name in enumerate(names):
        if index >= _MAX_UNTRACKED_FILES or time.monotonic() > deadline:
            out["..."] = {"files_not_listed": len(names) - index}
            break
        try:
            digest = file_digest(root / name)
        except OSError:
            continue
        out[name] = {"bytes": _size(root / name), "sha256": digest}
    return out


def _git(git: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    env = dict(os.environ)
    # Read-only: never take the index lock a concurrent `git commit` of the user needs.
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.pop("GIT_DIR", None)  # the repository is found from cwd, not the caller's environment
    env.pop("GIT_WORK_TREE", None)
    env.pop("GIT_INDEX_FILE", None)
    try:
        return subprocess.run(
            [git, "--no-pager", *_GIT_CONFIG, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def _text(result: subprocess.CompletedProcess[bytes]) -> str | None:
    return result.stdout.decode("utf-8", "replace").strip() or None


def _decode(data: bytes) -> str:
    # Binary files are base85 (ASCII) with --binary; only non-UTF-8 text files lose bytes here.
    return data.decode("utf-8", "replace")


def _empty_tree(git: str, root: Path) -> str | None:
    # The empty tree's id depends on the repository's hash algorithm (sha1 / sha256).
    result = _git(git, root, "hash-object", "-t", "tree", os.devnull)
    return _text(result) if result is not None and result.returncode == 0 else None


def _untracked_files(git: str, root: Path) -> list[str]:
    result = _git(git, root, "ls-files", "--others", "--exclude-standard", "-z", "--full-name")
    if result is None or result.returncode != 0:
        return []
    names = result.stdout.decode("utf-8", "surrogateescape").split("\0")
    return sorted(name for name in names if name)


def _untracked_patch(git: str, root: Path, files: list[str]) -> str:
    parts: list[str] = []
    total = 0
    skipped: list[str] = []
    deadline = time.monotonic() + _UNTRACKED_DEADLINE_S
    for index, name in enumerate(files):
        if index >= _MAX_UNTRACKED_FILES or time.monotonic() > deadline:
            skipped.extend(files[index:])
            break
        file = root / name
        try:
            size = file.lstat().st_size
        except OSError:
            continue
        # The patch of a file is at least as large as the file (base85 for binaries: ~1.25x).
        if total + size > _MAX_UNTRACKED_BYTES:
            skipped.append(name)
            continue
        result = _git(git, root, "diff", "--no-index", *_DIFF_FLAGS, "--", os.devnull, name)
        # --no-index exits 1 when the files differ, which they always do here.
        if result is None or result.returncode not in (0, 1):
            skipped.append(name)
            continue
        text = _decode(result.stdout)
        if total + len(text) > _MAX_UNTRACKED_BYTES:
            skipped.append(name)
            continue
        parts.append(text)
        total += len(text)
    if skipped:
        listed = ", ".join(skipped[:20]) + (", ..." if len(skipped) > 20 else "")
        parts.append(
            f"# ml-experiment: {len(skipped)} untracked files not included (over "
            f"{_MAX_UNTRACKED_BYTES} bytes / {_MAX_UNTRACKED_FILES} files in all, or unreadable): "
            f"{listed}\n"
        )
    return "".join(parts)


def _remote(git: str, root: Path) -> str | None:
    result = _git(git, root, "remote")
    if result is None or result.returncode != 0:
        return None
    names = result.stdout.decode("utf-8", "replace").split()
    if not names:
        return None
    name = "origin" if "origin" in names else names[0]
    url = _git(git, root, "remote", "get-url", name)
    if url is None or url.returncode != 0:
        return None
    text = _text(url)
    return _strip_credentials(text) if text else None


def _strip_credentials(url: str) -> str:
    """Drop ``user:password@`` (and bare tokens used as the user of http URLs) from a URL."""
    if "://" not in url:
        return url  # scp-like `git@host:org/repo.git`: the user is not a secret
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    if ":" in userinfo or parts.scheme.lower() in ("http", "https", "ftp", "ftps"):
        return urlunsplit(parts._replace(netloc=host))
    return url
