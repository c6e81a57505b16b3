"""What runs on a Ray worker for one group trial. Plain data in, plain data out."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_experiment import _runtime
from ml_experiment._tmp import make_private_dir
from ml_experiment.execution._invoke import invoke

if TYPE_CHECKING:
    from ml_experiment._job import JobFunction

# Per worker process: scripts are imported once, shared data fetched once.
_JOBS: dict[tuple[str, str], JobFunction] = {}
_DATA: dict[str, Any] = {}


@dataclass
class TrialSpec:
    script: str
    fn_name: str
    number: int
    params: dict[str, Any]
    seed: int | None
    study_name: str
    storage_path: str
    pruner: str
    metric_names: list[str]
    log_seeds: bool = True
    # Wrapped in a list so Ray passes the reference instead of resolving it on submission.
    data_ref: list[Any] | None = None
    # Set when the job autologs: the worker then opens the child run itself, so MLflow's
    # autologging has an active run to write to. (knowledge center, experiment name, parent run)
    live_run: tuple[Any, str, str] | None = None
    deterministic: bool = False
    # Joining a cluster: the driver's folder of the scripts, shipped as Ray's working_dir.
    code_dir: str | None = None


@dataclass
class TrialResult:
    state: str  # "complete" | "fail" | "pruned"
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    steps: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    seeds: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    started: float = 0.0
    ended: float = 0.0
    pid: int = 0
    console: str | None = None
    run_id: str | None = None  # the child run, when the worker opened it
    determinism: list[str] | None = None  # switches applied (deterministic: true)
    node: str | None = None  # the Ray node the trial ran on
    stored: bool = False  # artifacts and console log already uploaded by the worker


def _job_function(spec: TrialSpec) -> JobFunction:
    key = (spec.script, spec.fn_name)
    fn = _JOBS.get(key)
    if fn is None:
        from ml_experiment.execution._load import load_job_function

        script = Path(spec.script)
        if spec.code_dir and not script.exists():
            # Another machine: the worker runs in Ray's copy of the driver's folder.
            script = Path.cwd() / script.relative_to(spec.code_dir)
        # Imports inside the job function resolve like they do for ``python script.py``.
        if str(script.parent) not in sys.path:
            sys.path.insert(0, str(script.parent))
        fn = _JOBS[key] = load_job_function(script, spec.fn_name)
    return fn


@contextlib.contextmanager
def _live_run(spec: TrialSpec, job_fn: JobFunction, result: TrialResult) -> Iterator[None]:
    """Open the trial's child run here, with autologging on, when the job asked for autologging."""
    if spec.live_run is None:
        yield
        return
    import mlflow

    from ml_experiment.integrations._autolog import disable_autologging, enable_autologging
    from ml_experiment.tracking._fluent import fluent_tracking_uri
    from ml_experiment.tracking._mlflow import MLflowTracker
    from ml_experiment.tracking.record import RunRecord
    from ml_experiment.tracking.recorder import Recorder

    kc, experiment, parent = spec.live_run
    # Only the run's identity here; the driver's Recorder writes the rest when the trial ends.
    # Tagged with its number: if this worker dies, the driver finds the run and fails it.
    opened = RunRecord(
        experiment=experiment,
        name=f"trial-{spec.number}",
        parent_run_id=parent,
        tags={"ml_experiment.trial_number": spec.number},
    )
    backends = job_fn.options.autologging_backends
    if not backends:  # the run is only where this worker uploads the trial's files
        try:
            result.run_id = Recorder(MLflowTracker(kc)).start(opened)
        except Exception as exc:
            from ml_experiment.tracking._outage import is_unreachable

            if not is_unreachable(exc):
                raise
            # The server is away: the trial runs all the same; the driver records it (and
            # waits for the server) from what it returns.
        yield
        return
    result.run_id = Recorder(MLflowTracker(kc)).start(opened)
    with fluent_tracking_uri(kc.tracking_uri), mlflow.start_run(run_id=result.run_id):
        enable_autologging(backends)
        try:
            yield
        finally:
            disable_autologging(backends)


def _is_pruned(exc: BaseException) -> bool:
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(exc, optuna.TrialPruned)


def execute_trial(spec: TrialSpec) -> TrialResult:
    """Run one trial: never raises for a failure of the user's code (that is a result)."""
    from ml_experiment.hpo._trial import TrialContext
    from ml_experiment.tracking.console import ConsoleCapture
    from ml_experiment.tracking.recorder import missing_artifacts
    from ml_experiment.tracking.seeds import SeedRecorder

    result = TrialResult(state="complete", pid=os.getpid())
    job_fn = _job_function(spec)
    loader = job_fn.options.data_loader
    if loader is not None and spec.data_ref:
        ref = spec.data_ref[0]
        key = ref.hex()
        if key not in _DATA:
            import ray

            _DATA.clear()  # one group at a time per worker: drop data of a finished group
            _DATA[key] = ray.get(ref)
        loader._install(_DATA[key])

    ctx = TrialContext(spec.study_name, spec.storage_path, spec.number, spec.pruner)
    report_metric = spec.metric_names[0] if len(spec.metric_names) == 1 else None

    def on_step(step: int, metrics: dict[str, float]) -> None:
        result.steps.append((step, metrics))
        if report_metric is not None and report_metric in metrics:
            import optuna

            trial = ctx.trial()
            trial.report(metrics[report_metric], step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")

    if spec.deterministic:
        from ml_experiment.execution._determinism import apply_determinism

        result.determinism = apply_determinism()
    recorder = SeedRecorder(seed=spec.seed)
    # A private folder that names this worker: if Ray kills it mid-trial, the next start of a
    # private folder anywhere removes the log with it (remove_stale).
    console_dir = make_private_dir("mlx-trial-")
    console_path = console_dir / "console.log"
    result.started = time.time()
    try:
        with (
            _runtime.launched(_runtime.PlainCall()),
            _runtime.in_trial(ctx),
            ConsoleCapture(console_path),
            recorder,
            _live_run(spec, job_fn, result),
        ):
            metrics, artifacts, _ = invoke(job_fn.fn, spec.params, on_step=on_step)
        result.metrics = metrics
        result.artifacts = {k: str(Path(v).resolve()) for k, v in artifacts.items()}
        missing = missing_artifacts(result.artifacts)
        if missing:
            result.state, result.error = "fail", missing
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        if _is_pruned(exc):
            result.state = "pruned"
            result.error = str(exc) or "pruned"
        elif isinstance(exc, SystemExit) and exc.code in (0, None):
            result.state = "complete"  # as for an experiment: exit 0 is success
        else:
            result.state = "fail"
            result.error = f"{type(exc).__name__}: {exc}"
            result.traceback = "".join(traceback.format_exception(exc))
    finally:
        result.ended = time.time()
        with contextlib.suppress(OSError):
            result.console = console_path.read_text(encoding="utf-8", errors="replace")
        shutil.rmtree(console_dir, ignore_errors=True)
        if loader is not None:
            loader._uninstall()
    if spec.log_seeds:
        result.seeds = recorder.recorded()
    result.node = _node_id()
    if spec.live_run is not None and result.run_id is not None and spec.live_run[0].remote:
        _store_files(spec, result)
    return result


def _node_id() -> str | None:
    ray = sys.modules.get("ray")
    try:
        return str(ray.get_runtime_context().get_node_id()) if ray is not None else None
    except Exception:  # outside a Ray worker (tests call execute_trial directly)
        return None


def _store_files(spec: TrialSpec, result: TrialResult) -> None:
    """With a tracking server, this worker uploads the trial's files: the driver may not see them.

    Only the server's URL must be reachable from the worker (MLflow's proxied artifact access).
    """
    from ml_experiment.tracking._mlflow import MLflowTracker
    from ml_experiment.tracking.recorder import Recorder
    from ml_experiment.tracking.redact import scrub, secret_values

    recorder = Recorder(MLflowTracker(spec.live_run[0]))  # type: ignore[index]
    run_id = str(result.run_id)
    try:
        if result.state == "complete" and result.artifacts:
            recorder.write_artifacts(run_id, result.artifacts)
        if result.console:
            text = scrub(result.console, secret_values(spec.params))
            recorder.tracker.log_text(run_id, text, "logs/console.log")
        result.artifacts, result.stored = {}, True
    except Exception as exc:
        from ml_experiment.tracking._outage import is_unreachable

        if is_unreachable(exc):  # the driver uploads them once the server is back
            return
        result.state = "fail"  # the trial's record says why; the group goes on
        result.error = f"could not upload the trial's files from its worker: {exc}"
