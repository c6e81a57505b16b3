"""``ml-experiment package RUN_ID``: a Docker build context that re-creates a recorded run.

The context holds the recorded code (commit + patch, or the snapshot), the resolved job file
pointing at it, a wheelhouse with the recorded versions and its lock file (hashes, installed
with ``--require-hashes`` and no index), an entrypoint that runs the job, and a Dockerfile
``FROM`` a base image pinned by digest where the engine knows one. Every file's time is the
run's start, and ``SOURCE_DATE_EPOCH`` is set for the install, so two builds install the same
bytes (compiled files carry hashes, not times).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_experiment.exceptions import ConfigError

__all__ = ["Package", "package_run"]

APP = "/app"
VENV = "/opt/venv"
ENTRYPOINT = """#!/bin/sh
# Runs the packaged job; its runs go to MLFLOW_TRACKING_URI, else ./mlruns.db (WORKDIR /out).
set -e
here=$(cd "$(dirname "$0")" && pwd)
exec ml-experiment run "$here/job.json" "$@"
"""


@dataclass
class Package:
    """A written build context.

    Attributes:
        path: The context folder.
        base: The image the Dockerfile starts ``FROM``.
        warnings: What the user should know (packages that cannot be re-installed, ...).
        image_id: The built image, with ``--build``.
    """

    path: Path
    base: str
    warnings: list[str] = field(default_factory=list)
    image_id: str | None = None


def _job(record: Any, code: Path, out: Path) -> dict[str, Any]:
    from ml_experiment.reproduce._materialise import relocate

    config = dict(record.config or {})
    runs = []
    for script in config.get("run", []):
        moved = relocate(script, record, code)
        if moved is None or not moved.is_file():
            raise ConfigError(
                f"script {script} is not part of the recorded code of run {record.run_id}",
                field="run_id",
            )
        runs.append(str(moved.relative_to(out)))
    config["run"] = runs
    files = []
    for path in config.get("data_files", []):
        moved = relocate(path, record, code)
        files.append(str(moved.relative_to(out)) if moved is not None else str(path))
    if "data_files" in config:
        config["data_files"] = files
    for key in ("docker_config", "source", "tracking_uri"):
        config.pop(key, None)
    return config


def _base(record: Any, base: str | None, warnings: list[str]) -> str:
    """``FROM`` line's image: by digest where the engine knows it, else as named."""
    py = ".".join(str(record.environment.get("python_version", "3")).split(".")[:2])
    name = base or f"python:{py}-slim"
    try:
        from ml_experiment.execution._docker_engine import connect, image_info

        info = image_info(connect(), name)
    except Exception as exc:
        why = " ".join(str(getattr(exc, "reason", exc)).split())[:160]
        warnings.append(f"base image {name} is not pinned by digest ({why})")
        return name
    if info.digest:
        return info.digest
    warnings.append(f"base image {name} has no registry digest: pinned by its id {info.id}")
    return info.id


def _dockerfile(base: str, name: str, epoch: int) -> str:
    return f"""# Re-creates run {name}: ml-experiment package. Offline: pip uses only ./wheelhouse.
FROM {base}
ENV SOURCE_DATE_EPOCH={epoch} PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
COPY wheelhouse /tmp/wheelhouse
COPY requirements.lock /tmp/requirements.lock
RUN python3 -m venv {VENV} \\
 && {VENV}/bin/pip install --no-index --find-links /tmp/wheelhouse --require-hashes \\
      -r /tmp/requirements.lock \\
 && rm -rf /tmp/wheelhouse /tmp/requirements.lock /root/.cache
ENV PATH={VENV}/bin:$PATH HOME=/tmp RAY_USAGE_STATS_ENABLED=0
COPY code {APP}/code
COPY job.json entrypoint.sh {APP}/
WORKDIR /out
ENTRYPOINT ["sh", "{APP}/entrypoint.sh"]
"""


def package_run(
    run_id: str,
    *,
    out: str | Path | None = None,
    tracking_uri: str | None = None,
    base: str | None = None,
    build: bool = False,
) -> Package:
    """Write the build context of ``run_id`` (and build it with ``build``).

    Raises:
        ConfigError: unknown run, a run without its job file or code, or (``build``) no engine
            or a failed build.
    """
    from ml_experiment.package._lock import make_wheelhouse
    from ml_experiment.reproduce._materialise import CannotReproduce, materialise
    from ml_experiment.tracking.record import RunRecord

    if build:  # no engine: say so before anything is written
        from ml_experiment.execution._docker_engine import connect

        connect()
    record = RunRecord.load(run_id, tracking_uri=tracking_uri, parts=("config", "requirements"))
    dest = Path(out) if out is not None else Path("packages") / run_id
    if dest.exists() and any(dest.iterdir()):
        raise ConfigError(f"{dest} exists and is not empty; give another --out", field="--out")
    warnings: list[str] = []
    work = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        try:
            materialise(record, work / "code", tracking_uri=tracking_uri)
        except CannotReproduce as exc:
            raise ConfigError(
                f"cannot package run {run_id}: {exc.reason}", field="run_id"
            ) from None
        job = _job(record, work / "code", work)
        (work / "job.json").write_text(json.dumps(job, indent=2, sort_keys=True) + "\n")
        (work / "entrypoint.sh").write_text(ENTRYPOINT)
        py = ".".join(str(record.environment.get("python_version", "")).split(".")[:2]) or None
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        lock = make_wheelhouse(
            record.requirements or "", work / "code", work / "wheelhouse",
            python_version=py or here,
        )  # fmt: skip
        (work / "requirements.lock").write_text(lock.text())
        if lock.rebuilt:
            warnings.append(
                "not installable from an index as recorded (editable or local), copied in as "
                "wheels built from their source now: "
                + ", ".join(f"{n} {v}" for n, v in sorted(lock.rebuilt.items()))
            )
        if lock.missing:
            warnings.append(
                "cannot be re-installed, left out: "
                + "; ".join(f"{n} ({why})" for n, why in sorted(lock.missing.items()))
            )
        image = _base(record, base, warnings)
        epoch = int(record.start_time)
        (work / "Dockerfile").write_text(_dockerfile(image, run_id, epoch))
        for path in [work, *work.rglob("*")]:
            os.utime(path, (epoch, epoch), follow_symlinks=False)
        if dest.exists():
            dest.rmdir()
        dest.parent.mkdir(parents=True, exist_ok=True)
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result = Package(dest.resolve(), image, warnings)
    if build:
        result.image_id = build_package(result, run_id)
    return result


def build_package(package: Package, run_id: str) -> str:
    """Build a written context with the engine (no network: the wheelhouse is all it needs)."""
    from ml_experiment._output import VERBOSE, verbosity
    from ml_experiment.execution._docker_engine import build_image, connect

    info = build_image(
        connect(),
        dockerfile=package.path / "Dockerfile",
        context=package.path,
        args={},
        tag=f"ml-experiment-package/{run_id.lower()}:latest",
        verbose=verbosity() >= VERBOSE,
        field="--build",
        network="none",
    )
    return info.id
