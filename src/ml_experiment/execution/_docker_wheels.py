"""Wheelhouses: the project and its dependencies as wheels, for offline installs in an image.

Built on the host with pip (the index, or pip's cache, is reachable here; inside a container it
need not be), installed in the image with ``pip install --no-index --find-links``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ml_experiment._tmp import cache_dir
from ml_experiment.exceptions import ExecutionError

__all__ = [
    "Pins",
    "cache_dir",
    "parse_requirements",
    "pip_wheelhouse",
    "project_source",
    "project_wheel",
    "source_hash",
]

_NORMALIZE = re.compile(r"[-_.]+")
PROJECT = "ml-experiment"


def normalize(name: str) -> str:
    """PEP 503 name: ``Scikit_Learn`` -> ``scikit-learn``."""
    return _NORMALIZE.sub("-", name).lower()


@dataclass
class Pins:
    """Exact versions from a requirements file, and the distributions no index can give again.

    Attributes:
        exact: normalised name -> (name as written, version).
        local: ``name==version  # from <url>`` lines: editable installs and local paths.
    """

    exact: dict[str, tuple[str, str]] = field(default_factory=dict)
    local: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def constraints(self, *, without: tuple[str, ...] = ()) -> str:
        skip = {normalize(n) for n in without}
        return "".join(
            f"{name}=={version}\n"
            for key, (name, version) in sorted(self.exact.items())
            if key not in skip
        )


def parse_requirements(text: str) -> Pins:
    """Read the recorded ``requirements.txt`` (``tracking.environment.requirements_txt``)."""
    pins = Pins()
    for raw in text.splitlines():
        line, _, origin = raw.partition("#")
        line = line.strip()
        if "==" not in line:
            continue
        name, _, version = line.partition("==")
        name, version = name.strip(), version.strip()
        origin = origin.strip().removeprefix("from ").strip()
        if origin and not origin.startswith(("git+", "hg+", "svn+", "bzr+")):
            pins.local[normalize(name)] = (name, version, origin)
        else:
            pins.exact[normalize(name)] = (name, version)
    return pins


def project_source() -> Path | None:
    """The folder the running ml-experiment was installed from (an editable or local install)."""
    import ml_experiment

    pkg = Path(ml_experiment.__file__).resolve().parent
    for parent in pkg.parents[:3]:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "ml_experiment").is_dir():
            return parent
    return None


def source_hash() -> str:
    """A digest of the running ml-experiment's files: a changed checkout is a new wheel."""
    import ml_experiment

    pkg = Path(ml_experiment.__file__).resolve().parent
    digest = hashlib.sha256(ml_experiment.__version__.encode())
    for path in sorted(pkg.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(str(path.relative_to(pkg)).encode() + b"\0" + path.read_bytes())
    root = project_source()
    if root is not None:
        digest.update((root / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def _pip(args: list[str], what: str) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "SOURCE_DATE_EPOCH": "315532800"}
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "ERROR" in ln] or lines[-3:]
        raise ExecutionError(
            f"{what} failed (pip exit {done.returncode}): {' | '.join(errors[-3:])}"
        )


def build_wheel(source: Path, dest: Path, what: str) -> Path:
    """``pip wheel --no-deps`` of a source folder into ``dest``; the wheel's path."""
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.glob("*.whl"))
    _pip(["wheel", "--no-deps", "--quiet", "--wheel-dir", str(dest), str(source)], what)
    new = sorted(set(dest.glob("*.whl")) - before)
    if not new:  # the same wheel was there already
        stem = normalize(source.name).replace("-", "_")
        new = sorted(p for p in dest.glob("*.whl") if normalize(p.name).startswith(stem))
    if not new:
        raise ExecutionError(f"{what}: pip wrote no wheel to {dest}")
    return new[-1]


def project_wheel(dest: Path) -> Path:
    """A wheel of the running ml-experiment, built from its source folder."""
    from ml_experiment import __version__

    root = project_source()
    if root is None:
        raise ExecutionError(
            f"cannot build a wheel of ml-experiment {__version__}: its source folder is not "
            "known (not an editable or local install); use an image that has it installed"
        )
    for old in dest.glob("ml_experiment-*.whl"):
        old.unlink()
    return build_wheel(root, dest, f"building the ml-experiment {__version__} wheel")


def pip_wheelhouse(
    requirements: list[str],
    constraints: str,
    dest: Path,
    *,
    python_version: str | None = None,
) -> None:
    """Wheels of ``requirements`` and everything they need, at the ``constraints`` versions.

    Args:
        requirements: What to install (names, pins or wheel paths).
        constraints: ``name==version`` lines: the versions to take.
        dest: The wheelhouse folder.
        python_version: ``X.Y`` of the image's Python when it is not this one: binary wheels
            for it are downloaded instead of built here.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(constraints)
    try:
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        if python_version in (None, here):
            args = ["wheel", "--quiet", "--wheel-dir", str(dest)]
        else:
            args = ["download", "--quiet", "--only-binary=:all:", "--dest", str(dest)]
            args += ["--python-version", str(python_version)]
        _pip([*args, "-c", fh.name, *requirements], "collecting the wheelhouse")
    finally:
        os.unlink(fh.name)


def _constraints() -> str:
    from ml_experiment.tracking.environment import requirements_txt

    return parse_requirements(requirements_txt()).constraints(without=(PROJECT,))


def deps_key(python_version: str) -> str:
    """Key of an image's install: ml-experiment's version, this environment's versions, Python."""
    from ml_experiment import __version__

    text = json.dumps([__version__, _constraints(), python_version])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def project_wheelhouse(python_version: str) -> Path:
    """The running ml-experiment and its dependencies at this environment's versions (cached)."""
    constraints = _constraints()
    key = hashlib.sha256(
        json.dumps([source_hash(), constraints, python_version]).encode()
    ).hexdigest()[:16]
    final = cache_dir() / "wheelhouse" / key
    if (final / ".complete").is_file():
        return final
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=_ensure(final.parent)))
    try:
        wheel = project_wheel(work)
        pip_wheelhouse([str(wheel)], constraints, work, python_version=python_version)
        (work / ".complete").write_text(wheel.name + "\n")
        try:
            work.rename(final)
        except OSError:  # another process finished it first
            shutil.rmtree(work, ignore_errors=True)
        prune(final.parent, keep=final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final


def prune(folder: Path, keep: Path, *, at_most: int = 2) -> None:
    """Keep the newest wheelhouses only (each is a few hundred MB); unfinished ones stay."""
    done = sorted(
        (p for p in folder.iterdir() if (p / ".complete").is_file() and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in done[at_most - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
