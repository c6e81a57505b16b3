"""A recorded run as audit and diff read it: the ``RunRecord`` plus the parts it keeps as files."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_experiment.exceptions import ConfigError
from ml_experiment.tracking.record import SNAPSHOT_DIR, TEXT_FILES, RunRecord

# Files of the record that RunRecord.load lists but does not parse.
_EXTRA_FILES = ("numerics", "data_files", "code_manifest")
_ORIGIN = re.compile(r"^(?P<name>[^=\s#]+)==(?P<version>\S+)(?:\s+#\s*from\s+(?P<origin>.+))?$")


@dataclass
class RunView:
    """One run, read once: its record, every artifact's name, and the parsed extra files."""

    record: RunRecord
    tracking_uri: str
    artifact_names: list[str]
    numerics: dict[str, Any] | None = None
    data_files: dict[str, Any] | None = None
    code_manifest: Any = None
    datasets: list[dict[str, str]] = field(default_factory=list)  # MLflow dataset inputs

    @property
    def run_id(self) -> str:
        return str(self.record.run_id)

    @property
    def snapshot_files(self) -> list[str]:
        return [n for n in self.artifact_names if n.startswith(SNAPSHOT_DIR + "/")]


def quiet_mlflow() -> None:
    """No download progress bars on the command's output."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def open_client(tracking_uri: str | None) -> tuple[Any, str]:
    """The client of an existing knowledge center (never creates one) and its URI.

    Raises:
        ConfigError: a SQLite knowledge center whose file does not exist.
    """
    quiet_mlflow()
    from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

    kc = KnowledgeCenter.resolve(tracking_uri)
    if kc.tracking_uri.startswith("sqlite:///"):
        db = Path(kc.tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise ConfigError(
                f"no knowledge center at {db} (give --tracking_uri or MLFLOW_TRACKING_URI)",
                field="tracking_uri",
            )
    return MLflowTracker(kc).client, kc.tracking_uri


def load_view(run_id: str, tracking_uri: str | None) -> RunView:
    """Read run ``run_id`` with everything audit and diff grade or compare.

    Raises:
        ConfigError: no such knowledge center, or no run ``run_id`` in it.
    """
    client, uri = open_client(tracking_uri)
    record = RunRecord.load(run_id, tracking_uri=uri)
    names = _artifact_names(client, run_id)
    view = RunView(record=record, tracking_uri=uri, artifact_names=names)
    for part in _EXTRA_FILES:
        if hasattr(record, part):  # a RunRecord that parses the part itself
            setattr(view, part, getattr(record, part) or None)
        elif TEXT_FILES[part] in names:
            text = read_artifact(client, run_id, TEXT_FILES[part])
            try:
                setattr(view, part, json.loads(text))
            except ValueError:
                setattr(view, part, {"unreadable": text[:200]})
    run = client.get_run(run_id)
    for d in getattr(run.inputs, "dataset_inputs", None) or []:
        view.datasets.append({"name": d.dataset.name, "digest": d.dataset.digest})
    return view


def read_artifact(client: Any, run_id: str, path: str) -> str:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlx-audit-") as tmp:
        local = client.download_artifacts(run_id, path, tmp)
        return Path(local).read_text(encoding="utf-8", errors="replace")


def _artifact_names(client: Any, run_id: str, path: str | None = None) -> list[str]:
    names: list[str] = []
    for entry in client.list_artifacts(run_id, path):
        if entry.is_dir:
            names.extend(_artifact_names(client, run_id, entry.path))
        else:
            names.append(entry.path)
    return names


def packages(requirements: str | None) -> dict[str, tuple[str, str]]:
    """``name -> (version, origin)`` of a requirements file written by the run record."""
    found: dict[str, tuple[str, str]] = {}
    for line in (requirements or "").splitlines():
        m = _ORIGIN.match(line.strip())
        if m:
            name = re.sub(r"[-_.]+", "-", m["name"]).lower()
            found[name] = (m["version"], (m["origin"] or "").strip())
    return found


def local_origin(origin: str) -> bool:
    """Whether a package came from a local folder or an editable install (not reinstallable)."""
    return origin.startswith("file:") or origin.endswith("(editable)")
