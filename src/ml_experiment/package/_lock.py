"""The wheelhouse and lock file of a packaged run: the recorded versions, each with its hash.

Which distributions: ml-experiment's own requirements and those of the modules the run's scripts
import, each at the version the run recorded (a constraint for pip's resolver); the rest of the
recorded environment (test tools, unrelated packages) is listed in the lock file as left out.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from ml_experiment.execution._docker_wheels import (
    PROJECT,
    Pins,
    build_wheel,
    normalize,
    parse_requirements,
    pip_wheelhouse,
    project_wheel,
)

__all__ = ["Lock", "make_wheelhouse"]


@dataclass
class Lock:
    """What went into a wheelhouse.

    Attributes:
        pins: The recorded versions.
        wheels: wheel file name -> sha256.
        rebuilt: Local or editable distributions copied in as wheels built from their source.
        missing: Local or editable distributions that could not be (name -> why).
    """

    pins: Pins
    wheels: dict[str, str] = field(default_factory=dict)
    rebuilt: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """``requirements.lock`` for ``pip install --require-hashes -r``."""
        lines = ["# Exact versions the run recorded, with the sha256 of each wheel beside this."]
        for name in sorted(self.wheels, key=str.lower):
            dist, version = name.split("-")[:2]
            lines.append(f"{dist}=={version} --hash=sha256:{self.wheels[name]}")
        used = {normalize(n.split("-")[0]) for n in self.wheels}
        left = sorted(f"{n}=={v}" for k, (n, v) in self.pins.exact.items() if k not in used)
        if left:
            lines.append("# Recorded but not needed by the run's scripts (left out):")
            lines += [f"#   {item}" for item in left]
        return "\n".join(lines) + "\n"


def imported_modules(code: Path) -> set[str]:
    """Top-level module names the Python files under ``code`` import."""
    names: set[str] = set()
    local = {p.stem for p in code.rglob("*.py")} | {p.name for p in code.iterdir() if p.is_dir()}
    for path in code.rglob("*.py"):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names - local - set(sys.stdlib_module_names)


def _distributions(modules: set[str], pins: Pins) -> list[str]:
    """Recorded distributions that provide ``modules`` (by this environment's module map)."""
    import importlib.metadata

    provided = importlib.metadata.packages_distributions()
    out = set()
    for module in modules:
        for dist in provided.get(module, ()):
            key = normalize(dist)
            if key in pins.exact:
                out.add(key)
    return sorted(out)


def _local_source(origin: str) -> Path | None:
    url = origin.removesuffix("(editable)").strip()
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    path = Path(unquote(parsed.path))
    return path if path.exists() else None


def _cached_wheelhouse(
    local: list[Path], extra: list[str], constraints: str, dest: Path, python_version: str
) -> None:
    """``pip_wheelhouse`` into ``dest``, through a cache keyed by everything that decides it."""
    from ml_experiment.execution._docker_wheels import cache_dir, prune

    hashes = sorted(hashlib.sha256(w.read_bytes()).hexdigest() for w in local)
    key = hashlib.sha256(
        json.dumps([hashes, sorted(extra), constraints, python_version]).encode()
    ).hexdigest()[:16]
    cached = cache_dir() / "package-wheelhouse" / key
    if not (cached / ".complete").is_file():
        work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=_mkdir(cached.parent)))
        try:
            for wheel in local:
                shutil.copy2(wheel, work)
            pip_wheelhouse(
                [str(work / w.name) for w in local] + extra,
                constraints, work, python_version=python_version,
            )  # fmt: skip
            (work / ".complete").write_text("")
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        try:
            work.rename(cached)
        except OSError:  # another process finished it first
            shutil.rmtree(work, ignore_errors=True)
        prune(cached.parent, keep=cached)
    for wheel in cached.glob("*.whl"):
        target = dest / wheel.name
        if not target.exists():
            try:
                os.link(wheel, target)
            except OSError:
                shutil.copy2(wheel, target)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_wheelhouse(requirements: str, code: Path, dest: Path, *, python_version: str) -> Lock:
    """Fill ``dest`` with the wheels a packaged run installs; the lock describing them.

    Args:
        requirements: The run's recorded ``requirements.txt``.
        code: The run's materialised code (its imports choose the distributions).
        dest: The wheelhouse folder.
        python_version: ``X.Y`` of the recorded Python.
    """
    pins = parse_requirements(requirements)
    lock = Lock(pins)
    local_wheels: list[Path] = []
    for key, (name, version, origin) in sorted(pins.local.items()):
        source = _local_source(origin)
        try:
            if key == normalize(PROJECT):
                # The project's own checkout may have moved on: the running one is the wheel.
                wheel = project_wheel(dest)
            elif source is not None and source.is_file() and source.suffix == ".whl":
                wheel = Path(shutil.copy2(source, dest))
            elif source is not None and source.is_dir():
                wheel = build_wheel(source, dest, f"building {name} from {source}")
            else:
                lock.missing[name] = f"{origin} is not on this machine"
                continue
        except Exception as exc:
            lock.missing[name] = " ".join(str(exc).split())[:200]
            continue
        lock.rebuilt[name] = f"{version} from {origin}"
        local_wheels.append(wheel)
    wanted = _distributions(imported_modules(code), pins)
    extra = [pins.exact[k][0] for k in wanted if k not in pins.local]
    constraints = pins.constraints(without=tuple(pins.local))
    _cached_wheelhouse(local_wheels, extra, constraints, dest, python_version)
    for wheel in sorted(dest.glob("*.whl")):
        lock.wheels[wheel.name] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return lock
