"""What every tracked run records beside its params and metrics (SPEC section 5)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ml_experiment.tracking.record import SNAPSHOT_DIR, TAG_DETERMINISTIC, TAG_SNAPSHOT, RunRecord

# Extra tags for every run this process creates, as a JSON object: set by `reproduce` (the run
# it re-runs) and by the container runner (the image), which start this process.
RUN_TAGS_ENV = "ML_EXPERIMENT_RUN_TAGS"
# A JSON file with the code record to keep (commit, patch, ...): a re-run of a git run runs
# that exact code from a materialised folder that is not itself a repository.
RUN_CODE_ENV = "ML_EXPERIMENT_RUN_CODE"


def capture_context(
    record: RunRecord,
    *,
    resolved_config: dict[str, Any] | None,
    source_file: str | None,
    system_info: bool = True,
) -> None:
    """Fill ``record`` with its code version, software and hardware environment and job config."""
    record.config = resolved_config
    record.tags["mlflow.source.type"] = "LOCAL"
    record.tags.update(run_tags())
    if source_file:
        record.code["source"] = source_file
    record.code["cwd"] = os.getcwd()
    config = resolved_config or {}
    record.tags[TAG_DETERMINISTIC] = str(bool(config.get("deterministic"))).lower()
    if config.get("data_files"):
        record.data_files = hash_data_files(config["data_files"])
    if not system_info:
        return
    from ml_experiment.tracking._numerics import numerics_info
    from ml_experiment.tracking.environment import requirements_txt, software_info
    from ml_experiment.tracking.hardware import hardware_info

    _capture_code(record, source_file, config)
    record.environment.update({k: str(v) for k, v in software_info().items()})
    record.hardware.update({k: str(v) for k, v in hardware_info().items()})
    record.numerics = numerics_info(record.hardware)
    record.requirements = requirements_txt()
    record.python = f"{sys.executable}\n{sys.version}\n"


def refresh_numerics(record: RunRecord) -> None:
    """Re-read the BLAS/OpenMP libraries once the function has run (it loads them)."""
    if record.numerics:
        from ml_experiment.tracking._numerics import threadpools

        record.numerics["threadpools"] = threadpools()


def run_tags() -> dict[str, str]:
    """The tags named by ``ML_EXPERIMENT_RUN_TAGS`` (a JSON object of strings)."""
    text = os.environ.get(RUN_TAGS_ENV)
    if not text:
        return {}
    try:
        tags = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}


def store_paths(tracking_uri: str | None) -> tuple[Path, ...]:
    """The knowledge center's own files (store, artifacts, study journal): never code."""
    from ml_experiment.exceptions import ConfigError
    from ml_experiment.tracking._mlflow import DEFAULT_ARTIFACTS, DEFAULT_DB, KnowledgeCenter

    try:
        kc = KnowledgeCenter.resolve(tracking_uri)
    except ConfigError:
        return ()
    paths = [kc.studies_path, kc.base_dir / DEFAULT_DB, kc.base_dir / DEFAULT_ARTIFACTS]
    if kc.tracking_uri.startswith("sqlite:///"):
        paths.append(Path(kc.tracking_uri.removeprefix("sqlite:///")))
    if kc.artifact_root is not None:
        paths.append(kc.artifact_root)
    return tuple(paths)


def _capture_code(record: RunRecord, source_file: str | None, config: dict[str, Any]) -> None:
    from ml_experiment.tracking.vcs import git_info

    given = os.environ.get(RUN_CODE_ENV)
    if given and Path(given).is_file():
        code = json.loads(Path(given).read_text(encoding="utf-8"))
        record.code_manifest = code.pop("manifest", {})
        record.code.update({k: str(v) for k, v in code.items()})
        return
    exclude = store_paths(config.get("tracking_uri"))
    git = git_info(Path(source_file).parent if source_file else Path.cwd(), exclude)
    if git is not None:
        found = {"commit": git.commit, "branch": git.branch, "repo": git.remote, "root": git.root}
        record.code.update({k: v for k, v in found.items() if v})
        record.code["dirty"] = str(git.dirty).lower()
        if git.diff:
            record.code["patch"] = git.diff
        record.code_manifest = git.manifest or {}
        return
    record.tags["git.commit"] = "none (not a git repository)"
    if not source_file:
        return
    from ml_experiment.tracking._snapshot import snapshot

    job = config.get("source")
    files, left_out = snapshot(Path(source_file), Path(job) if job else None, exclude)
    for rel, content in files.items():
        record.artifacts[f"{SNAPSHOT_DIR}/{rel}"] = content
    record.code_manifest = left_out
    size = sum(len(c) for c in files.values())
    note = f", {len(left_out)} left out" if left_out else ""
    record.tags[TAG_SNAPSHOT] = f"{len(files)} files, {size} bytes{note}"


def hash_data_files(paths: list[str]) -> dict[str, dict[str, Any]]:
    """SHA-256 of each job-file data file (folders: of their files), size and hashing time."""
    from ml_experiment.tracking.fingerprint import file_fingerprint

    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        started = time.perf_counter()
        file = Path(path)
        size = (
            file.stat().st_size
            if file.is_file()
            else sum(p.stat().st_size for p in file.rglob("*") if p.is_file())
        )
        digest = file_fingerprint(file)
        seconds = round(time.perf_counter() - started, 3)
        out[path] = {"sha256": digest, "bytes": size, "seconds": seconds}
        if seconds > 2:
            print(
                f"ml-experiment: hashed data file {path} ({size} bytes) in {seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    return out
