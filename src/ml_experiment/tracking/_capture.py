"""What every tracked run records beside its params and metrics (SPEC section 5)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ml_experiment.tracking._mlflow import MLflowTracker

# Standard MLflow tags, so the MLflow UI shows code version and source as it does for its own runs.
TAG_GIT_COMMIT = "mlflow.source.git.commit"
TAG_GIT_BRANCH = "mlflow.source.git.branch"
TAG_GIT_REPO = "mlflow.source.git.repoURL"
TAG_SOURCE_NAME = "mlflow.source.name"
TAG_SOURCE_TYPE = "mlflow.source.type"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every known secret string in ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def context_tags(
    source_file: str | None, *, system_info: bool
) -> tuple[dict[str, str], str | None]:
    """Tags for code version, software and hardware, plus the uncommitted-changes patch."""
    tags: dict[str, str] = {TAG_SOURCE_TYPE: "LOCAL"}
    if source_file:
        tags[TAG_SOURCE_NAME] = source_file
    if not system_info:
        return tags, None
    from ml_experiment.tracking.environment import software_info
    from ml_experiment.tracking.hardware import hardware_info
    from ml_experiment.tracking.vcs import git_info

    patch: str | None = None
    git = git_info(Path(source_file).parent if source_file else Path.cwd())
    if git is not None:
        if git.commit:
            tags[TAG_GIT_COMMIT] = git.commit
        if git.branch:
            tags[TAG_GIT_BRANCH] = git.branch
        if git.remote:
            tags[TAG_GIT_REPO] = git.remote
        tags["git.dirty"] = str(git.dirty).lower()
        if git.root:
            tags["git.root"] = git.root
        patch = git.diff or None
    else:
        tags["git.commit"] = "none (not a git repository)"
    tags.update({f"env.{k}": str(v) for k, v in software_info().items()})
    tags.update({f"hw.{k}": str(v) for k, v in hardware_info().items()})
    return tags, patch


def record_context(
    tracker: MLflowTracker,
    run_id: str,
    *,
    resolved_config: dict[str, Any],
    source_file: str | None,
    system_info: bool = True,
    secrets: Iterable[str] = (),
) -> None:
    """Log code version, environment, hardware and the resolved job config on ``run_id``."""
    tags, patch = context_tags(source_file, system_info=system_info)
    tracker.log(run_id, tags=tags)
    secrets = list(secrets)
    from ml_experiment.tracking.redact import redact_params

    text = json.dumps(redact_params(resolved_config), indent=2, default=str)
    tracker.log_text(run_id, scrub(text, secrets), "config/job.json")
    if system_info:
        from ml_experiment.tracking.environment import requirements_txt

        tracker.log_text(run_id, requirements_txt(), "environment/requirements.txt")
        tracker.log_text(run_id, f"{sys.executable}\n{sys.version}\n", "environment/python.txt")
        if patch:
            tracker.log_text(run_id, patch, "code/uncommitted.patch")
