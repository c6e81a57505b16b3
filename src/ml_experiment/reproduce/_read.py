"""A recorded run as audit and diff read it: the ``RunRecord`` plus the parts it keeps as files."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_experiment.exceptions import ConfigError
from ml_experiment.tracking.record import (
    SNAPSHOT_DIR,
    TAG_DETERMINISTIC,
    TAG_DETERMINISTIC_APPLIED,
    TAG_SNAPSHOT,
    TEXT_FILES,
    RunRecord,
)

# Files of the record that RunRecord.load lists but does not parse.
_EXTRA_FILES = ("numerics", "data_files", "code_manifest")
_ORIGIN = re.compile(r"^(?P<name>[^=\s#]+)==(?P<version>\S+)(?:\s+#\s*from\s+(?P<origin>.+))?$")


@dataclass
class RunView:
    """One run, read once: its record, every artifact's name, and the parsed extra files.

    A group's trial keeps its code, environment, hardware and job file on its parent run: those
    parts are taken from the parent and named in ``inherited``.
    """

    record: RunRecord
    tracking_uri: str
    artifact_names: list[str]
    numerics: dict[str, Any] | None = None
    data_files: dict[str, Any] | None = None
    code_manifest: Any = None
    datasets: list[dict[str, str]] = field(default_factory=list)  # MLflow dataset inputs
    snapshot_files: list[str] = field(default_factory=list)  # artifacts of ``code_run_id``
    code_run_id: str = ""
    inherited: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.record.run_id)


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
    view = _load_one(client, uri, run_id)
    parent_id = view.record.parent_run_id
    if parent_id:
        try:
            parent = _load_one(client, uri, parent_id)
        except ConfigError:  # the parent run was deleted: grade what the trial has
            return view
        _inherit(view, parent)
    return view


def _load_one(client: Any, uri: str, run_id: str) -> RunView:
    record = RunRecord.load(run_id, tracking_uri=uri)
    names = _artifact_names(client, run_id)
    view = RunView(record=record, tracking_uri=uri, artifact_names=names, code_run_id=run_id)
    view.snapshot_files = [n for n in names if n.startswith(SNAPSHOT_DIR + "/")]
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


def _inherit(view: RunView, parent: RunView) -> None:
    """Fill the parts a trial leaves to its parent run."""
    rec, prec = view.record, parent.record
    own_code = rec.code.get("commit") or view.snapshot_files
    if not own_code and (prec.code.get("commit") or parent.snapshot_files):
        rec.code = {**prec.code, **rec.code}
        view.snapshot_files, view.code_run_id = parent.snapshot_files, parent.code_run_id
        view.code_manifest = view.code_manifest or parent.code_manifest
        if TAG_SNAPSHOT in prec.tags:
            rec.tags.setdefault(TAG_SNAPSHOT, prec.tags[TAG_SNAPSHOT])
        view.inherited.append("code")
    for part in ("config", "requirements", "python", "hardware", "environment", "data"):
        if not getattr(rec, part) and getattr(prec, part):
            setattr(rec, part, getattr(prec, part))
            view.inherited.append(part)
    for part in ("numerics", "data_files"):
        if getattr(view, part) is None and getattr(parent, part) is not None:
            setattr(view, part, getattr(parent, part))
            view.inherited.append(part)
    for tag in (TAG_DETERMINISTIC, TAG_DETERMINISTIC_APPLIED):
        if tag not in rec.tags and tag in prec.tags:
            rec.tags[tag] = prec.tags[tag]
            view.inherited.append("deterministic")


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
