"""One experiment: the function run once, tracked (``kind: experiment``) or not (``kind: job``)."""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_experiment._tmp import private_dir
from ml_experiment.callbacks._dispatch import CallbackDispatcher
from ml_experiment.exceptions import ExecutionError, RunFailedError
from ml_experiment.execution._invoke import bind_params, invoke
from ml_experiment.execution._signals import interrupts_raise
from ml_experiment.execution._summary import experiment_summary, show

if TYPE_CHECKING:
    from ml_experiment._job import JobFunction
    from ml_experiment.tracking._mlflow import MLflowTracker
    from ml_experiment.tracking.record import RunRecord
    from ml_experiment.tracking.recorder import Recorder


@dataclass
class RunOutcome:
    """What a finished experiment produced."""

    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    value: Any = None
    duration: float = 0.0


def effective_params(config: Any, job_fn: JobFunction, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Job-file params, overridden by keyword arguments given in code, then signature defaults."""
    given = {**config.params, **kwargs}
    return bind_params(job_fn.signature, given, fn_name=job_fn.name, source=config.source)


@contextlib.contextmanager
def data_loaded(job_fn: JobFunction) -> Iterator[dict[str, str]]:
    """Run the job's DataLoader once and share its result for the block; yield its fingerprints."""
    loader = job_fn.options.data_loader
    if loader is None:
        yield {}
        return
    from ml_experiment.tracking.fingerprint import fingerprint

    data = loader._compute()
    loader._install(data)
    try:
        yield {loader.__name__: fingerprint(data)}
    finally:
        loader._uninstall()


def exit_status(exc: BaseException | None) -> str:
    """The MLflow status a run ends with after ``exc`` (``None``: it returned)."""
    if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
        return "FINISHED"
    return "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"


def describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit: exit code {exc.code!r}"
    return f"{type(exc).__name__}: {exc}"


def run_experiment(
    config: Any,
    job_fn: JobFunction,
    *,
    script: Path | None,
    kwargs: dict[str, Any] | None = None,
    tracker: MLflowTracker | None = None,
) -> RunOutcome:
    """Run ``job_fn`` once. ``kind: job`` runs untracked; otherwise one MLflow run records everything.

    Raises:
        ConfigError: bad parameters (before any run is created).
        RunFailedError: the function raised; the run is FAILED (or deleted) with the traceback.
        Interrupted: Ctrl-C or SIGTERM; the run is KILLED.
    """
    params = effective_params(config, job_fn, kwargs or {})
    callbacks = CallbackDispatcher.for_job(config, job_fn)  # bad notify: URLs before any write
    if config.kind == "job":
        return _run_untracked(config, job_fn, params, callbacks)
    from ml_experiment._gc import Hold
    from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

    hold = Hold()  # the collector rests while MLflow loads, as in a group's start
    try:
        tracker = tracker or MLflowTracker(KnowledgeCenter.resolve(config.tracking_uri))
        hold.release()
        return _run_tracked(config, job_fn, params, script, tracker, callbacks)
    finally:
        hold.close()


def _run_untracked(
    config: Any, job_fn: JobFunction, params: dict[str, Any], callbacks: CallbackDispatcher
) -> RunOutcome:
    from ml_experiment.tracking.seeds import SeedRecorder

    callbacks("on_job_start", config=config)
    started = time.time()
    try:
        if config.deterministic:
            from ml_experiment.execution._determinism import apply_determinism

            apply_determinism()
        with SeedRecorder(seed=config.seed), data_loaded(job_fn):
            metrics, artifacts, _ = invoke(job_fn.fn, params)
    except Exception as exc:
        callbacks("on_job_end", config=config, exception=exc, duration=time.time() - started)
        raise RunFailedError(f"job {config.name!r} failed: {type(exc).__name__}: {exc}") from exc
    callbacks("on_info_logged", config=config, metrics=metrics, artifacts=artifacts)
    callbacks(
        "on_job_end", config=config, exception=None, duration=time.time() - started, metrics=metrics
    )
    return RunOutcome(None, metrics, artifacts, duration=time.time() - started)


def _start_record(
    config: Any, job_fn: JobFunction, params: dict[str, Any], script: Path | None
) -> RunRecord:
    from ml_experiment.tracking._capture import capture_context
    from ml_experiment.tracking.record import TAG_FUNCTION, TAG_KIND, RunRecord

    record = RunRecord(
        experiment=config.name,
        name=config.name,
        params=params,
        tags={TAG_KIND: config.kind, TAG_FUNCTION: job_fn.name},
    )
    if config.seed is not None:
        record.seeds["seed"] = str(config.seed)
    source = str(script or job_fn.source_file or "")
    capture_context(
        record,
        resolved_config=config.resolved_dict(),
        source_file=source or None,
        system_info=job_fn.options.log_system_info,
    )
    return record


def _run_tracked(
    config: Any,
    job_fn: JobFunction,
    params: dict[str, Any],
    script: Path | None,
    tracker: MLflowTracker,
    callbacks: CallbackDispatcher,
) -> RunOutcome:
    from ml_experiment.tracking._watch import watch
    from ml_experiment.tracking.recorder import Recorder

    recorder = Recorder(tracker, secrets=callbacks.secrets())
    record = _start_record(config, job_fn, params, script)
    run_id = recorder.start(record)
    watcher = watch(run_id, tracker.kc.tracking_uri)  # a process that dies is still recorded
    callbacks("on_job_start", config=config, run_id=run_id)
    error: BaseException | None = None
    with private_dir() as tmp:
        console_path = Path(tmp) / "console.log"
        try:
            _call(config, job_fn, record, recorder, callbacks, console_path)
        except BaseException as exc:
            error = exc
        finally:
            record.end_time = time.time()
            if console_path.exists():
                record.console = console_path.read_text(encoding="utf-8", errors="replace")
    record.status = exit_status(error)
    if record.status != "FINISHED" and error is not None:
        from ml_experiment.tracking.record import SNAPSHOT_DIR

        record.error = describe(error)
        record.traceback = "".join(traceback.format_exception(error))
        # The function's artifacts may be half-written; the code snapshot is the record's own.
        record.artifacts = {k: v for k, v in record.artifacts.items() if k.startswith(SNAPSHOT_DIR)}
    duration = record.end_time - record.start_time
    returned = dict(record.metrics)  # what the function returned; duration_s is ours
    record.metrics["duration_s"] = duration
    if record.status == "FINISHED":
        callbacks("on_info_logged", config=config, metrics=returned, artifacts=record.artifacts)
    if callbacks.failures:
        record.tags["callbacks.failed"] = "; ".join(callbacks.failures)
    failed = error if record.status != "FINISHED" else None
    try:
        recorder.finish_after(record, failed)
    finally:
        if watcher is not None:
            watcher.release()
        show(experiment_summary(config.name, run_id, record.status, returned, duration))
        callbacks(
            "on_job_end",
            config=config,
            exception=failed,
            duration=duration,
            metrics=returned,
            run_id=run_id,
        )
    return _outcome(record, failed, job_fn, recorder)


def _call(
    config: Any,
    job_fn: JobFunction,
    record: RunRecord,
    recorder: Recorder,
    callbacks: CallbackDispatcher,
    console_path: Path,
) -> None:
    """Run the function inside the run: console captured, seeds recorded, steps logged live."""
    import mlflow

    from ml_experiment.execution._determinism import apply_determinism, determinism_tags
    from ml_experiment.integrations._autolog import disable_autologging, enable_autologging
    from ml_experiment.tracking._capture import refresh_numerics
    from ml_experiment.tracking._fluent import fluent_tracking_uri
    from ml_experiment.tracking.console import ConsoleCapture
    from ml_experiment.tracking.recorder import missing_artifacts
    from ml_experiment.tracking.seeds import SeedRecorder

    def on_step(step: int, metrics: dict[str, float]) -> None:
        recorder.log_step(record, step, metrics)
        callbacks("on_info_logged", config=config, metrics=metrics, artifacts={}, step=step)

    backends = job_fn.options.autologging_backends
    seeds = SeedRecorder(seed=config.seed)
    with (
        interrupts_raise(f"experiment {config.name!r} interrupted"),
        ConsoleCapture(console_path),
        fluent_tracking_uri(recorder.tracker.kc.tracking_uri),  # the fluent API, autologging
        mlflow.start_run(run_id=record.run_id, nested=mlflow.active_run() is not None),
    ):
        if backends:
            enable_autologging(backends)
        try:
            applied = apply_determinism() if config.deterministic else []
            record.tags.update(determinism_tags(config.deterministic, applied))
            with seeds, data_loaded(job_fn) as fingerprints:
                record.data.update(fingerprints)
                record.metrics, artifacts, _ = invoke(job_fn.fn, record.params, on_step=on_step)
            record.artifacts.update(artifacts)
            missing = missing_artifacts(artifacts)
            if missing:
                raise ExecutionError(missing)
        finally:
            refresh_numerics(record)
            if job_fn.options.log_seeds:
                record.seeds.update(seeds.recorded())
            if backends:
                disable_autologging(backends)


def _outcome(
    record: RunRecord, error: BaseException | None, job_fn: JobFunction, recorder: Recorder
) -> RunOutcome:
    run_id = record.run_id
    duration = record.metrics["duration_s"]
    if error is None:
        return RunOutcome(run_id, record.metrics, dict(record.artifacts), duration=duration)  # type: ignore[arg-type]
    if job_fn.options.delete_if_failed and run_id is not None:
        with contextlib.suppress(Exception):
            recorder.tracker.delete_run(run_id)
    if isinstance(error, KeyboardInterrupt):
        raise error
    failed = RunFailedError(f"run {run_id} of {record.name!r} failed: {describe(error)}")
    for note in getattr(error, "__notes__", ()):
        failed.add_note(note)
    raise failed from error
