"""One experiment: the function run once, tracked (``kind: experiment``) or not (``kind: job``)."""

from __future__ import annotations

import contextlib
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_experiment.callbacks._dispatch import CallbackDispatcher
from ml_experiment.exceptions import ExecutionError, RunFailedError
from ml_experiment.execution._invoke import bind_params, final_metrics, invoke

if TYPE_CHECKING:
    from ml_experiment._job import JobFunction
    from ml_experiment.tracking._mlflow import MLflowTracker


@dataclass
class RunOutcome:
    """What a finished experiment produced."""

    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    value: Any = None


def effective_params(config: Any, job_fn: JobFunction, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Job-file params, overridden by keyword arguments given in code, then signature defaults."""
    given = {**config.params, **kwargs}
    return bind_params(job_fn.signature, given, fn_name=job_fn.name, source=config.source)


@contextlib.contextmanager
def data_loaded(job_fn: JobFunction) -> Iterator[dict[str, str]]:
    """Run the job's DataLoader once and share its result for the block; yield its fingerprint tags."""
    loader = job_fn.options.data_loader
    if loader is None:
        yield {}
        return
    from ml_experiment.tracking.fingerprint import fingerprint

    data = loader._compute()
    loader._install(data)
    try:
        yield {f"data.fingerprint.{loader.__name__}": fingerprint(data)}
    finally:
        loader._uninstall()


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
    """
    params = effective_params(config, job_fn, kwargs or {})
    if config.kind == "job":
        return _run_untracked(config, job_fn, params)
    from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

    tracker = tracker or MLflowTracker(KnowledgeCenter.resolve(config.tracking_uri))
    return _run_tracked(config, job_fn, params, script, tracker)


def _run_untracked(config: Any, job_fn: JobFunction, params: dict[str, Any]) -> RunOutcome:
    from ml_experiment.tracking.seeds import SeedRecorder

    callbacks = CallbackDispatcher(job_fn.options.callbacks)
    callbacks("on_job_start", config=config)
    started = time.time()
    try:
        with SeedRecorder(seed=config.seed), data_loaded(job_fn):
            metrics, artifacts, _ = invoke(job_fn.fn, params)
    except Exception as exc:
        callbacks("on_job_end", config=config, exception=exc, duration=time.time() - started)
        raise RunFailedError(f"job {config.name!r} failed: {type(exc).__name__}: {exc}") from exc
    callbacks("on_info_logged", config=config, metrics=metrics, artifacts=artifacts)
    callbacks(
        "on_job_end", config=config, exception=None, duration=time.time() - started, metrics=metrics
    )
    return RunOutcome(None, metrics, artifacts)


def _run_tracked(
    config: Any,
    job_fn: JobFunction,
    params: dict[str, Any],
    script: Path | None,
    tracker: MLflowTracker,
) -> RunOutcome:
    import mlflow

    from ml_experiment.integrations._autolog import disable_autologging, enable_autologging
    from ml_experiment.tracking._capture import record_context, scrub
    from ml_experiment.tracking._mlflow import fluent_tracking_uri
    from ml_experiment.tracking.console import ConsoleCapture
    from ml_experiment.tracking.redact import redact_params
    from ml_experiment.tracking.seeds import SeedRecorder

    opts = job_fn.options
    callbacks = CallbackDispatcher(opts.callbacks)
    secrets = callbacks.secrets()
    source = str(script or job_fn.source_file or "")
    run_id = tracker.create_run(
        config.name,
        run_name=config.name,
        tags={"ml_experiment.kind": config.kind, "ml_experiment.function": job_fn.name},
    )
    tracker.log(run_id, params=redact_params(params))
    record_context(
        tracker,
        run_id,
        resolved_config=config.resolved_dict(),
        source_file=source or None,
        system_info=opts.log_system_info,
        secrets=secrets,
    )
    if config.seed is not None:
        tracker.log(run_id, tags={"seed": config.seed})
    callbacks("on_job_start", config=config, run_id=run_id)

    last_step: dict[str, float] = {}

    def on_step(step: int, metrics: dict[str, float]) -> None:
        last_step.clear()
        last_step.update(metrics)
        tracker.log(run_id, metrics=metrics, step=step)
        callbacks("on_info_logged", config=config, metrics=metrics, artifacts={}, step=step)

    started = time.time()
    error: BaseException | None = None
    metrics: dict[str, float] = {}
    artifacts: dict[str, str] = {}
    seeds: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="mlx-") as tmp:
        console_path = Path(tmp) / "console.log"
        try:
            with (
                ConsoleCapture(console_path),
                fluent_tracking_uri(tracker.kc.tracking_uri),  # the fluent API, autologging
                mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None),
            ):
                if opts.autologging_backends:
                    enable_autologging(opts.autologging_backends)
                recorder = SeedRecorder(seed=config.seed)
                try:
                    with recorder, data_loaded(job_fn) as data_tags:
                        if data_tags:
                            tracker.log(run_id, tags=data_tags)
                        metrics, artifacts, steps = invoke(job_fn.fn, params, on_step=on_step)
                    # A generator's final metrics were logged step by step already.
                    tracker.log(
                        run_id, metrics=final_metrics(metrics, last_step), step=max(steps - 1, 0)
                    )
                    for name, path in artifacts.items():
                        if not Path(path).exists():
                            raise ExecutionError(
                                f"artifact {name!r}: no such file or folder {path!r}"
                            )
                        tracker.log_artifact(run_id, path, _artifact_dir(name, path))
                finally:
                    seeds = recorder.recorded()
                    if opts.autologging_backends:
                        disable_autologging(opts.autologging_backends)
        except Exception as exc:
            error = exc
            tb = "".join(traceback.format_exception(exc))
            tracker.log_text(run_id, scrub(tb, secrets), "error/traceback.txt")
            tracker.log(
                run_id, tags={"error": scrub(f"{type(exc).__name__}: {exc}", secrets)[:5000]}
            )
        if opts.log_seeds and seeds:
            tracker.log(run_id, tags=seeds)
        if console_path.exists():
            text = console_path.read_text(encoding="utf-8", errors="replace")
            tracker.log_text(run_id, scrub(text, secrets), "logs/console.log")
    duration = time.time() - started
    tracker.log(run_id, metrics={"duration_s": duration})
    if error is None:
        callbacks("on_info_logged", config=config, metrics=metrics, artifacts=artifacts)
    if callbacks.failures:
        tracker.log(run_id, tags={"callbacks.failed": "; ".join(callbacks.failures)[:5000]})
    tracker.end_run(run_id, "FAILED" if error else "FINISHED")
    callbacks(
        "on_job_end",
        config=config,
        exception=error,
        duration=duration,
        metrics=metrics,
        run_id=run_id,
    )
    if error is not None:
        if opts.delete_if_failed:
            tracker.delete_run(run_id)
        raise RunFailedError(
            f"run {run_id} of {config.name!r} failed: {type(error).__name__}: {error}"
        ) from error
    return RunOutcome(run_id, metrics, artifacts)


def _artifact_dir(name: str, path: str) -> str | None:
    """Files go under artifacts/<name>/ unless the name is the file's own name."""
    p = Path(path)
    return None if p.is_file() and name == p.name else name
