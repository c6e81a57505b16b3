"""``Recorder``: the one writer of runs. Every text it stores is scrubbed and clipped here, once.

Two ways to write a :class:`RunRecord`:

- live (experiments, group parents): :meth:`Recorder.start` creates the run with its params and
  context before the function runs (a crashed run still shows them), :meth:`Recorder.log_step`
  writes steps as they come, :meth:`Recorder.finish` writes the rest and ends the run;
- at once (group trials): :meth:`Recorder.write`, one transaction where the store allows it.

Finalisation never hides the error it happens during: :meth:`Recorder.finish_after` attaches a
failed write to the original error as a note instead of raising over it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_experiment.exceptions import ExecutionError, TrackingError
from ml_experiment.tracking._outage import StoreUnavailable, is_unreachable
from ml_experiment.tracking.record import TAG_ERROR, TAG_PARENT, RunRecord
from ml_experiment.tracking.redact import clip, redact_params, scrub, secret_values

if TYPE_CHECKING:
    from ml_experiment.tracking._mlflow import MLflowTracker

log = logging.getLogger("ml_experiment.tracking")

PARAM_TEXT_MAX = 6000  # longest string kept for one value inside config/job.json


def missing_artifacts(artifacts: Mapping[str, Any]) -> str | None:
    """A message naming the first artifact whose file or folder does not exist, else ``None``."""
    for name, path in artifacts.items():
        if isinstance(path, str | Path) and not Path(path).exists():
            return f"artifact {name!r}: no such file or folder {str(path)!r}"
    return None


def artifact_dir(name: str, path: Path) -> str | None:
    """Where an artifact lands: under ``name/``, or at the root when ``name`` is the file's name."""
    return None if path.is_file() and name == path.name else name


class Recorder:
    """Writes run records to one knowledge center.

    Args:
        tracker: The MLflow facade of the knowledge center.
        secrets: Strings never to store (notifier credentials); the values of secret-named
            parameters of each record are added per record.
    """

    def __init__(self, tracker: MLflowTracker, *, secrets: Iterable[str] = ()) -> None:
        self.tracker = tracker
        self.secrets = [s for s in secrets if s]
        self._written: dict[str, set[str]] = {}  # run id -> text artifacts already stored

    # -- what is stored, cleaned ------------------------------------------------------------
    def _secrets(self, record: RunRecord) -> list[str]:
        return [*self.secrets, *secret_values(record.params)]

    def scrub(self, text: str, params: Mapping[str, Any] | None = None) -> str:
        """``text`` as it may be shown or stored: known secrets and secret params' values masked."""
        return scrub(text, [*self.secrets, *secret_values(params or {})])

    def _tags(self, record: RunRecord, secrets: list[str]) -> dict[str, str]:
        return {k: clip(scrub(v, secrets)) for k, v in record.mlflow_tags().items()}

    def _params(self, record: RunRecord, secrets: list[str]) -> dict[str, Any]:
        return {
            k: scrub(v, secrets) if isinstance(v, str) else v
            for k, v in redact_params(record.params).items()
        }

    def _texts(self, record: RunRecord, secrets: list[str]) -> dict[str, str]:
        if record.config is not None:
            record = _with_config(record, _clip_values(redact_params(record.config)))
        return {f: scrub(t, secrets) for f, t in record.texts().items()}

    # -- live runs ------------------------------------------------------------------------
    def start(self, record: RunRecord) -> str:
        """Create the run (RUNNING) with its params, tags and context texts."""
        secrets = self._secrets(record)
        tags = self._tags(record, secrets)
        tags.pop(TAG_PARENT, None)
        run_id = self.tracker.create_run(
            record.experiment,
            run_name=record.name,
            tags=tags,
            parent_run_id=record.parent_run_id,
            start_time=record.start_time,
        )
        record.run_id = run_id
        self.tracker.log(run_id, params=self._params(record, secrets))
        self._write_texts(record, secrets)
        return run_id

    def log_step(self, record: RunRecord, step: int, metrics: Mapping[str, float]) -> None:
        record.steps.append((step, dict(metrics)))
        self.tracker.log(_run_id(record), metrics=metrics, step=step)

    def finish(self, record: RunRecord) -> None:
        """Write what :meth:`start` and :meth:`log_step` did not, then end the run."""
        run_id = _run_id(record)
        secrets = self._secrets(record)
        last_step, last = record.steps[-1] if record.steps else (0, {})
        # A generator's final metrics were logged step by step already.
        metrics = {k: v for k, v in record.metrics.items() if last.get(k) != v}
        tags = self._tags(record, secrets)
        tags.pop(TAG_PARENT, None)
        self.tracker.log(run_id, metrics=metrics, tags=tags, step=last_step)
        self._write_texts(record, secrets)
        self._write_files(run_id, _scrub_code(record.artifacts, secrets))
        self.tracker.end_run(run_id, record.status, end_time=record.end_time)
        self._written.pop(run_id, None)
        self.tracker.forget(run_id)

    def finish_after(self, record: RunRecord, error: BaseException | None) -> None:
        """:meth:`finish`, keeping ``error`` (the run's own failure) the one the user sees.

        If the write fails while ``error`` is being handled, the write failure becomes a note on
        ``error`` and the run is marked FAILED if anything can still be written. Without an
        ``error``, a failed write raises :class:`TrackingError`.
        """
        try:
            self.finish(record)
        except Exception as exc:
            message = f"could not write run {record.run_id} to the knowledge center: {exc}"
            if error is None:
                raise TrackingError(message) from exc
            error.add_note(f"also: {' '.join(message.split())}")
            if record.run_id is not None:
                with contextlib.suppress(Exception):
                    self.tracker.end_run(record.run_id, "FAILED", end_time=record.end_time)

    # -- finished runs --------------------------------------------------------------------
    def write(self, record: RunRecord) -> str:
        """Write a finished record (a group's trial) at once and return its run id.

        Whatever MLflow refuses of it (a metric name it rejects, an artifact name that climbs
        out of the run, a file that is gone) fails this run, with the reason, and nothing else:
        the run is still written, FAILED, with what could be kept.
        """
        secrets = self._secrets(record)
        if record.run_id is not None:
            return self._complete(record, secrets)
        try:
            record.run_id = self.tracker.record_run(
                record.experiment,
                run_name=record.name,
                status=record.status,
                start_time=record.start_time,
                end_time=record.end_time or record.start_time,
                tags=self._tags(record, secrets),
                params=self._params(record, secrets),
                metrics=record.metrics,
                steps=record.steps,
                step=record.steps[-1][0] if record.steps else 0,
            )
        except Exception as exc:
            if record.run_id is None:
                record.run_id = getattr(exc, "run_id", None)
            if is_unreachable(exc):  # not a refusal: the caller waits for the store
                raise StoreUnavailable(f"{record.name}: {_first_line(exc)}") from exc
            self._fail_written(record, secrets, exc, keep_run=record.run_id is not None)
            return _run_id(record)
        try:
            self._write_texts(record, secrets)
            self._write_files(record.run_id, _scrub_code(record.artifacts, secrets))
        except Exception as exc:
            if is_unreachable(exc):
                raise StoreUnavailable(f"{record.name}: {_first_line(exc)}") from exc
            self._fail_written(record, secrets, exc, keep_run=True)
        self._written.pop(record.run_id, None)
        self.tracker.forget(record.run_id)
        return record.run_id

    def _complete(self, record: RunRecord, secrets: list[str]) -> str:
        """A finished record whose run was opened elsewhere (a worker's autologging run)."""
        run_id = _run_id(record)
        try:
            # Autologging may have logged a same-named param already; params are write-once.
            existing = self.tracker.client.get_run(run_id).data.params
            params = self._params(record, secrets)
            self.tracker.log(run_id, params={k: v for k, v in params.items() if k not in existing})
            self.tracker.log(run_id, steps=record.steps)
            self.finish(record)
        except Exception as exc:
            if is_unreachable(exc):
                raise StoreUnavailable(f"{record.name}: {_first_line(exc)}") from exc
            self._fail_written(record, secrets, exc, keep_run=True)
        return run_id

    def _fail_written(
        self, record: RunRecord, secrets: list[str], exc: BaseException, *, keep_run: bool
    ) -> None:
        reason = f"could not record this run: {type(exc).__name__}: {_first_line(exc)}"
        if record.error:
            reason = f"{record.error}; {reason}"
        log.warning("%s: %s", record.name, scrub(reason, secrets))
        record.status, record.error = "FAILED", reason
        if keep_run:
            run_id = _run_id(record)
            self.tracker.log(run_id, tags={TAG_ERROR: clip(scrub(reason, secrets))})
            self.tracker.end_run(run_id, "FAILED", end_time=record.end_time)
            return
        # Nothing was written: the run with its identity and the reason, without what failed.
        bare = RunRecord(
            experiment=record.experiment,
            name=record.name,
            parent_run_id=record.parent_run_id,
            status="FAILED",
            start_time=record.start_time,
            end_time=record.end_time,
            params=record.params,
            tags=record.tags,
            error=reason,
            console=record.console,
            traceback=record.traceback,
        )
        for params in (self._params(bare, secrets), {}):  # without params if they were refused
            try:
                record.run_id = bare.run_id = self.tracker.record_run(
                    bare.experiment,
                    run_name=bare.name,
                    status="FAILED",
                    start_time=bare.start_time,
                    end_time=bare.end_time or bare.start_time,
                    tags=self._tags(bare, secrets),
                    params=params,
                )
                break
            except Exception:
                if not params:
                    raise
        with contextlib.suppress(Exception):  # the run and its reason are what must be kept
            self._write_texts(bare, secrets)

    # -- artifacts --------------------------------------------------------------------------
    def _write_texts(self, record: RunRecord, secrets: list[str]) -> None:
        run_id = _run_id(record)
        done = self._written.setdefault(run_id, set())
        for artifact_file, text in self._texts(record, secrets).items():
            if artifact_file not in done:
                self.tracker.log_text(run_id, text, artifact_file)
                done.add(artifact_file)

    def write_artifacts(self, run_id: str, artifacts: Mapping[str, str | Path | bytes]) -> None:
        """Write artifacts to an open run (the rule of :func:`artifact_dir`)."""
        self._write_files(run_id, artifacts)

    def _write_files(self, run_id: str, artifacts: Mapping[str, str | Path | bytes]) -> None:
        missing = missing_artifacts(artifacts)
        if missing:
            raise ExecutionError(missing)
        for name, value in artifacts.items():
            if isinstance(value, bytes):
                self.tracker.log_bytes(run_id, value, name)
                continue
            path = Path(value)
            self.tracker.log_artifact(run_id, path, artifact_dir(name, path))


def _scrub_code(
    artifacts: Mapping[str, str | Path | bytes], secrets: list[str]
) -> dict[str, str | Path | bytes]:
    """The code snapshot's files scrubbed like every text the store keeps (a job file may name
    notify URLs, a script a secret-named param's value)."""
    from ml_experiment.tracking.record import SNAPSHOT_DIR

    out = dict(artifacts)
    for name, value in artifacts.items():
        if isinstance(value, bytes) and name.startswith(SNAPSHOT_DIR + "/") and secrets:
            text = value.decode("utf-8", errors="surrogateescape")
            out[name] = scrub(text, secrets).encode("utf-8", errors="surrogateescape")
    return out


def _run_id(record: RunRecord) -> str:
    if record.run_id is None:
        raise TrackingError(f"run {record.name!r} was never created in the knowledge center")
    return record.run_id


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _clip_values(value: Any) -> Any:
    """Long strings inside the job config cut to :data:`PARAM_TEXT_MAX` characters."""
    if isinstance(value, str):
        return clip(value, PARAM_TEXT_MAX)
    if isinstance(value, Mapping):
        return {k: _clip_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clip_values(v) for v in value]
    return value


def _with_config(record: RunRecord, config: dict[str, Any]) -> RunRecord:
    from dataclasses import replace

    return replace(record, config=json.loads(json.dumps(config, default=str)))
