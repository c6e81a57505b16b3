"""``RunRecord``: everything one run is, as a plain value, and how it maps onto an MLflow run.

Every writer (experiments, group parents, group trials, autologged trials) builds a record and
hands it to the :class:`~ml_experiment.tracking.recorder.Recorder`; every reader (reproduce,
audit, diff, reports) gets one back with :meth:`RunRecord.load`. The mapping onto MLflow tags and
artifact files lives here, once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_experiment.exceptions import ConfigError, TrackingError

# Tags and artifact files of the record's parts.
TAG_KIND = "ml_experiment.kind"
TAG_FUNCTION = "ml_experiment.function"
TAG_PARENT = "mlflow.parentRunId"
TAG_ERROR = "error"
TAG_SEED = "seed"
TAG_SITTINGS = "ml_experiment.sittings"  # on a group's parent: 1, then +1 per --resume
SEED_PREFIX = "seed."
ENV_PREFIX = "env."
HW_PREFIX = "hw."
DATA_PREFIX = "data.fingerprint."
CODE_TAGS = {
    "commit": "mlflow.source.git.commit",
    "branch": "mlflow.source.git.branch",
    "repo": "mlflow.source.git.repoURL",
    "dirty": "git.dirty",
    "root": "git.root",
    "source": "mlflow.source.name",
    "cwd": "ml_experiment.cwd",
}
TEXT_FILES = {
    "config": "config/job.json",
    "console": "logs/console.log",
    "traceback": "error/traceback.txt",
    "patch": "code/uncommitted.patch",
    "requirements": "environment/requirements.txt",
    "python": "environment/python.txt",
    "numerics": "environment/numerics.json",
    "data_files": "data/files.json",
    "code_manifest": "code/manifest.json",
}
# Code snapshot of a script outside git: one artifact per file under this folder.
SNAPSHOT_DIR = "code/snapshot"
TAG_SNAPSHOT = "code.snapshot"  # "N files, B bytes[, M left out]"
# Float-affecting environment: numerics.env.<VAR> per variable set, numerics.blas summary.
NUMERICS_PREFIX = "numerics."
TAG_DETERMINISTIC = "ml_experiment.deterministic"  # "true" | "false"
TAG_DETERMINISTIC_APPLIED = "ml_experiment.deterministic.applied"  # comma-separated switches
# Reproduction and audit verdicts (written by `reproduce` / `audit`).
TAG_REPRODUCES = "reproduction.of"  # on the re-run: the original's run id
TAG_REPRODUCED_BY = "reproduction.by"  # on the original: the latest re-run's id
TAG_VERDICT = "reproduction.verdict"  # identical | within tolerance | differs | cannot reproduce
REPRODUCTION_REPORT = "reproduction/report.json"
TAG_AUDIT_SCORE = "audit.score"  # "N/M"
TAG_AUDIT_RESULT = "audit.result"  # pass | fail
AUDIT_REPORT = "audit/report.json"
# Tags the record's own fields produce; everything else on a run is an extra tag.
_FIELD_PREFIXES = (SEED_PREFIX, ENV_PREFIX, HW_PREFIX, DATA_PREFIX, NUMERICS_PREFIX)
_JSON_PARTS = ("numerics", "data_files", "code_manifest")
_FIELD_TAGS = {TAG_ERROR, TAG_SEED, TAG_PARENT, *CODE_TAGS.values()}


@dataclass
class RunRecord:
    """One run: identity, what went in, what came out, and where it ran.

    ``artifacts`` maps an artifact's name to a local file or folder, or to its content
    (``str``/``bytes``). A file or folder named ``name`` lands under ``name/`` in the run's
    artifacts, unless ``name`` is the file's own name (then at the root).
    """

    experiment: str
    name: str
    parent_run_id: str | None = None
    run_id: str | None = None
    status: str = "RUNNING"  # RUNNING | FINISHED | FAILED | KILLED
    start_time: float = field(default_factory=time.time)
    end_time: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    steps: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    tags: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str | Path | bytes] = field(default_factory=dict)
    seeds: dict[str, str] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)  # CODE_TAGS keys, plus "patch"
    environment: dict[str, str] = field(default_factory=dict)  # env.* values
    hardware: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)  # DataLoader name -> fingerprint
    # job-file data_files: path -> {"sha256", "bytes", "seconds"}
    data_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    numerics: dict[str, Any] = field(default_factory=dict)  # see tracking/_numerics.py
    # untracked files not in the patch, or left out of a snapshot: path -> {"bytes", "sha256"}
    code_manifest: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None  # the resolved job file
    requirements: str | None = None
    python: str | None = None
    console: str | None = None
    error: str | None = None
    traceback: str | None = None

    # -- onto MLflow --------------------------------------------------------------------------
    def mlflow_tags(self) -> dict[str, str]:
        """The tags this record is stored as (before scrubbing and clipping)."""
        tags = {str(k): str(v) for k, v in self.tags.items()}
        tags.update(self.seeds)
        tags.update({CODE_TAGS[k]: v for k, v in self.code.items() if k in CODE_TAGS and v})
        tags.update({ENV_PREFIX + k: v for k, v in self.environment.items()})
        tags.update({HW_PREFIX + k: v for k, v in self.hardware.items()})
        tags.update({DATA_PREFIX + k: v for k, v in self.data.items()})
        if self.numerics:
            from ml_experiment.tracking._numerics import numerics_tags

            tags.update({NUMERICS_PREFIX + k: v for k, v in numerics_tags(self.numerics).items()})
        if self.parent_run_id:
            tags[TAG_PARENT] = self.parent_run_id
        if self.error:
            tags[TAG_ERROR] = self.error
        return {k: str(v) for k, v in tags.items()}

    def texts(self) -> dict[str, str]:
        """The record's parts stored as text artifacts: artifact file -> content."""
        parts = {
            "config": (
                json.dumps(self.config, indent=2, default=str) if self.config is not None else None
            ),
            "console": self.console,
            "traceback": self.traceback,
            "patch": self.code.get("patch"),
            "requirements": self.requirements,
            "python": self.python,
        }
        for part in _JSON_PARTS:
            value = getattr(self, part)
            parts[part] = json.dumps(value, indent=2, default=str) if value else None
        return {TEXT_FILES[k]: v for k, v in parts.items() if v is not None}

    # -- from MLflow --------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        run_id: str,
        *,
        tracking_uri: str | None = None,
        parts: tuple[str, ...] = (),
    ) -> RunRecord:
        """Read the run ``run_id`` back from the knowledge center.

        Args:
            run_id: An MLflow run id.
            tracking_uri: The knowledge center; default as for ``ml-experiment run``.
            parts: Parts the caller needs (``"console"``, ``"config"``, ``"code"``, ``"seeds"``,
                ``"environment"``, ``"hardware"``, ``"data"``, ``"requirements"``,
                ``"traceback"``, ``"metrics"``, ``"params"``): one the run lacks is an error.

        Raises:
            ConfigError: no run ``run_id`` in this knowledge center.
            TrackingError: the run lacks one of ``parts``.
        """
        from mlflow.exceptions import MlflowException

        from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

        kc = KnowledgeCenter.resolve(tracking_uri)
        client = MLflowTracker(kc).client
        try:
            run = client.get_run(run_id)
        except MlflowException:
            raise ConfigError(
                f"no run {run_id!r} in the knowledge center {kc.tracking_uri}", field="run_id"
            ) from None
        experiment = client.get_experiment(run.info.experiment_id)
        tags = dict(run.data.tags)
        record = cls(
            experiment=experiment.name,
            name=run.info.run_name or "",
            parent_run_id=tags.get(TAG_PARENT),
            run_id=run.info.run_id,
            status=run.info.status,
            start_time=run.info.start_time / 1000,
            end_time=run.info.end_time / 1000 if run.info.end_time else None,
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags={
                k: v
                for k, v in tags.items()
                if k not in _FIELD_TAGS and not k.startswith(_FIELD_PREFIXES)
            },
            seeds={k: v for k, v in tags.items() if k.startswith(SEED_PREFIX) or k == TAG_SEED},
            code={k: tags[t] for k, t in CODE_TAGS.items() if t in tags},
            environment=_strip(tags, ENV_PREFIX),
            hardware=_strip(tags, HW_PREFIX),
            data=_strip(tags, DATA_PREFIX),
            error=tags.get(TAG_ERROR),
        )
        record.steps = _steps(client, run_id, run.data.metrics)
        local = _local_folder(run.info.artifact_uri)
        names = _local_names(local) if local else _artifact_names(client, run_id)
        record.artifacts = {n: n for n in names if n not in TEXT_FILES.values()}
        texts = {
            f: (local / f).read_text("utf-8", errors="replace")
            if local
            else _read_text(client, run_id, f)
            for f in TEXT_FILES.values()
            if f in names
        }
        if TEXT_FILES["config"] in texts:
            record.config = json.loads(texts[TEXT_FILES["config"]])
        if TEXT_FILES["patch"] in texts:
            record.code["patch"] = texts[TEXT_FILES["patch"]]
        record.console = texts.get(TEXT_FILES["console"])
        record.traceback = texts.get(TEXT_FILES["traceback"])
        record.requirements = texts.get(TEXT_FILES["requirements"])
        record.python = texts.get(TEXT_FILES["python"])
        for part in _JSON_PARTS:
            if TEXT_FILES[part] in texts:
                setattr(record, part, json.loads(texts[TEXT_FILES[part]]))
        for part in parts:
            if not record.has(part):
                where = TEXT_FILES.get(part, f"its {part} tags")
                raise TrackingError(
                    f"run {run_id} lacks its {part} ({where} is not in the knowledge center "
                    f"{kc.tracking_uri})"
                )
        return record

    def has(self, part: str) -> bool:
        """Whether the record holds ``part`` (see :meth:`load`)."""
        value = getattr(self, part)
        return bool(value) if not isinstance(value, str) else True


def _strip(tags: dict[str, str], prefix: str) -> dict[str, str]:
    return {k[len(prefix) :]: v for k, v in tags.items() if k.startswith(prefix)}


def _steps(
    client: Any, run_id: str, latest: dict[str, float]
) -> list[tuple[int, dict[str, float]]]:
    by_step: dict[int, dict[str, float]] = {}
    for key in latest:
        history = client.get_metric_history(run_id, key)
        if len(history) > 1 or (history and history[0].step != 0):
            for m in history:
                by_step.setdefault(m.step, {})[key] = m.value
    return sorted(by_step.items())


def _local_folder(artifact_uri: str | None) -> Path | None:
    """The run's artifact folder when the store keeps it on this machine (read directly)."""
    from urllib.parse import unquote, urlparse

    if not artifact_uri:
        return None
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(unquote(parsed.path))
    return Path(artifact_uri) if not parsed.scheme and artifact_uri.startswith("/") else None


def _local_names(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _artifact_names(client: Any, run_id: str, path: str | None = None) -> list[str]:
    names: list[str] = []
    try:
        entries = client.list_artifacts(run_id, path)
    except Exception as exc:  # the artifact store may be gone while the run's row is not
        raise TrackingError(f"run {run_id}: cannot list its artifacts: {exc}") from exc
    for entry in entries:
        if entry.is_dir:
            names.extend(_artifact_names(client, run_id, entry.path))
        else:
            names.append(entry.path)
    return names


def _read_text(client: Any, run_id: str, artifact: str) -> str:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlx-read-") as tmp:
        local = client.download_artifacts(run_id, artifact, tmp)
        return Path(local).read_text(encoding="utf-8", errors="replace")
