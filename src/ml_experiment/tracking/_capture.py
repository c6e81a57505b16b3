"""What every tracked run records beside its params and metrics (SPEC section 5)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ml_experiment.tracking.record import RunRecord


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
    if source_file:
        record.code["source"] = source_file
    if not system_info:
        return
    from ml_experiment.tracking.environment import requirements_txt, software_info
    from ml_experiment.tracking.hardware import hardware_info
    from ml_experiment.tracking.vcs import git_info

    git = git_info(Path(source_file).parent if source_file else Path.cwd())
    if git is not None:
        found = {"commit": git.commit, "branch": git.branch, "repo": git.remote, "root": git.root}
        record.code.update({k: v for k, v in found.items() if v})
        record.code["dirty"] = str(git.dirty).lower()
        if git.diff:
            record.code["patch"] = git.diff
    else:
        record.tags["git.commit"] = "none (not a git repository)"
    record.environment.update({k: str(v) for k, v in software_info().items()})
    record.hardware.update({k: str(v) for k, v in hardware_info().items()})
    record.requirements = requirements_txt()
    record.python = f"{sys.executable}\n{sys.version}\n"
