"""A group: one Optuna study, trials dispatched dynamically to Ray workers, one MLflow child run each.

The driver owns every decision and every write: it asks the sampler for each trial (so one
sampler decides all parameters), sends the trial to a free worker, tells the study the result
and records the child run. Workers only compute.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_experiment.callbacks._dispatch import CallbackDispatcher
from ml_experiment.config import MetricConfig, flatten_space, unflatten_params
from ml_experiment.exceptions import ConfigError, RunFailedError
from ml_experiment.execution._invoke import bind_params, final_metrics
from ml_experiment.execution._progress import GroupProgress
from ml_experiment.execution._ray import ray_session
from ml_experiment.execution._ray import slots as _slots
from ml_experiment.execution._worker import TrialResult, TrialSpec, execute_trial
from ml_experiment.execution._writer import BackgroundWriter

if TYPE_CHECKING:
    import optuna

    from ml_experiment._job import JobFunction
    from ml_experiment.tracking._mlflow import MLflowTracker

ATTR_PARENT = "ml_experiment.parent_run_id"
ATTR_INTERRUPTED = "ml_experiment.interrupted"
ATTR_ERROR = "ml_experiment.error"
TAG_TRIAL = "ml_experiment.trial_number"
TAG_STATE = "ml_experiment.trial_state"
_MLFLOW_STATUS = {"complete": "FINISHED", "fail": "FAILED", "pruned": "KILLED"}


@dataclass
class GroupOutcome:
    run_id: str
    study_name: str
    counts: dict[str, int]
    best_trials: list[dict[str, Any]] = field(default_factory=list)
    value: Any = None


def group_metrics(config: Any, job_fn: JobFunction) -> list[MetricConfig]:
    """The objective(s): the job file's ``metric``, else ``@job(optimization_metric=...)``."""
    metric = config.metric
    if metric is None:
        default = job_fn.options.optimization_metric
        if default is None:
            raise ConfigError(
                "a group needs a metric to optimise: add `metric: {name: ..., direction: ...}` "
                "or @job(optimization_metric=...)",
                source=config.source,
                field="metric",
            )
        metric = MetricConfig(name=default) if isinstance(default, str) else default
        if isinstance(metric, dict):
            metric = MetricConfig(**metric)
    return list(metric) if isinstance(metric, list) else [metric]


def _check_params(config: Any, job_fn: JobFunction) -> None:
    """Fixed and searched parameters must fit the function before anything is created."""
    given = {**config.params, **dict.fromkeys(config.param_space)}
    for name in config.param_space:
        if name in config.params:
            # The search decides; a fixed value for the same name is silently shadowed otherwise.
            raise ConfigError(
                f"{name!r} is both in params and in param_space; keep one",
                source=config.source,
                field=f"params.{name}",
            )
    bind_params(
        job_fn.signature,
        given,
        fn_name=job_fn.name,
        source=config.source,
        searched=config.param_space,  # helper A: only fixed params are type-checked
    )


_POLL_S = 0.5  # longest wait for a trial before the driver looks at Ctrl-C again


class _CtrlC:
    """Ctrl-C during the trial loop stops the group at the loop's next turn.

    Python raises KeyboardInterrupt wherever the main thread happens to be, e.g. inside a
    journal append holding the study's file lock or inside Ray's client code, and the clean-up
    that follows could then hang or crash. The first Ctrl-C only sets a flag that the loop
    checks between trials; a second one interrupts at once.
    """

    def __init__(self) -> None:
        import signal
        import threading

        self.requested = False
        self._installed = threading.current_thread() is threading.main_thread()
        if self._installed:
            # None: a handler set outside Python; Python's own is put back in its place.
            self._previous = (
                signal.signal(signal.SIGINT, self._handle) or signal.default_int_handler
            )

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def restore(self) -> None:
        import signal

        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


class GroupRunner:
    """Drives one group from start (or resume) to its summary."""

    def __init__(self, config: Any, job_fn: JobFunction, script: Path, *, resume: bool) -> None:
        from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

        self.config = config
        self.job_fn = job_fn
        self.script = script.resolve()
        self.resume = resume
        self.metrics = group_metrics(config, job_fn)
        _check_params(config, job_fn)
        self.space = config.param_space
        self.flat = flatten_space(self.space)
        self.distributions = {k: d.to_optuna() for k, d in self.flat.items()}
        self.kc = KnowledgeCenter.resolve(config.tracking_uri)
        self.tracker: MLflowTracker = MLflowTracker(self.kc)
        self.callbacks = CallbackDispatcher(job_fn.options.callbacks)
        self.secrets = self.callbacks.secrets()
        self.counts = {"complete": 0, "fail": 0, "pruned": 0}
        self.best_value: Any = None

    # -- study -----------------------------------------------------------------------------
    def open_study(self) -> optuna.Study:
        import optuna

        from ml_experiment.hpo import build_pruner, build_sampler, open_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.storage_path = str(self.kc.studies_path)
        storage = open_storage(self.storage_path)
        name = self.config.name
        exists = name in {s.study_name for s in optuna.get_all_study_summaries(storage)}
        if exists and not self.resume:
            raise ConfigError(
                f"a study named {name!r} already exists in {self.storage_path}; run with --resume "
                "to continue it, or give the job another name",
                source=self.config.source,
                field="name",
            )
        if self.resume and not exists:
            raise ConfigError(
                f"--resume: there is no study named {name!r} in {self.storage_path} to resume",
                source=self.config.source,
                field="name",
            )
        seed = self.config.seed
        if exists and seed is not None:
            # A resumed sampler seeded as at the start would propose the same values again.
            from ml_experiment.tracking.seeds import derive_seed

            done = len(
                optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
            )
            seed = derive_seed(seed, 1_000_000 + done)
        sampler = build_sampler(
            self.config.sampler,
            seed=seed,
            search_space=self.distributions,
            multi_objective=len(self.metrics) > 1,
        )
        return optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=build_pruner(self.config.pruner),
            directions=[m.direction for m in self.metrics],
            load_if_exists=self.resume,
        )

    # -- tracking --------------------------------------------------------------------------
    def start_parent(self, study: optuna.Study) -> str:
        from ml_experiment.tracking._capture import record_context
        from ml_experiment.tracking.redact import redact_params

        if self.resume:
            run_id = study.user_attrs.get(ATTR_PARENT)
            if run_id:
                self.tracker.client.update_run(run_id, status="RUNNING")
                return str(run_id)
        run_id = self.tracker.create_run(
            self.config.name,
            run_name=self.config.name,
            tags={
                "ml_experiment.kind": "group",
                "ml_experiment.function": self.job_fn.name,
                "ml_experiment.study": self.config.name,
                "ml_experiment.study_storage": self.storage_path,
            },
        )
        params: dict[str, Any] = dict(redact_params(self.config.params))
        params.update({f"param_space.{k}": str(v) for k, v in self.flat.items()})
        params.update(
            num_trials=self.config.num_trials,
            sampler=self.config.sampler,
            pruner=self.config.pruner,
            metric=", ".join(f"{m.name} ({m.direction})" for m in self.metrics),
            timeout_per_trial=self.config.timeout_per_trial,
            seed=self.config.seed,
        )
        self.tracker.log(run_id, params={k: v for k, v in params.items() if v is not None})
        record_context(
            self.tracker,
            run_id,
            resolved_config=self.config.resolved_dict(),
            source_file=str(self.script),
            system_info=self.job_fn.options.log_system_info,
            secrets=self.secrets,
        )
        study.set_user_attr(ATTR_PARENT, run_id)
        return run_id

    def record_trial(
        self,
        frozen: optuna.trial.FrozenTrial,
        params: dict[str, Any],
        result: TrialResult,
        seed: int | None,
    ) -> None:
        from ml_experiment.tracking._capture import scrub
        from ml_experiment.tracking.redact import redact_params

        tags: dict[str, Any] = {TAG_TRIAL: frozen.number, TAG_STATE: result.state}
        tags.update(self.data_tags)
        if seed is not None:
            tags["seed"] = seed
        tags.update(result.seeds)
        if result.error:
            tags["error"] = scrub(result.error, self.secrets)[:5000]
        logged_params = redact_params(params)
        metrics = final_metrics(result.metrics, result.steps[-1][1] if result.steps else None)
        if result.ended and result.started:
            metrics["duration_s"] = result.ended - result.started
        step = result.steps[-1][0] if result.steps else 0
        status = _MLFLOW_STATUS[result.state]
        if result.run_id:  # opened by the worker (autologging)
            run_id = result.run_id
            self.tracker.log(run_id, tags=tags)
            # Autologging may have logged a same-named param already; MLflow params are write-once.
            existing = self.tracker.client.get_run(run_id).data.params
            logged_params = {k: v for k, v in logged_params.items() if k not in existing}
            self.tracker.log(
                run_id, params=logged_params, metrics=metrics, step=step, steps=result.steps
            )
        else:
            run_id = self.tracker.record_run(
                self.config.name,
                run_name=f"trial-{frozen.number}",
                status=status,
                start_time=result.started or time.time(),
                end_time=result.ended or time.time(),
                tags=tags,
                parent_run_id=self.parent_run_id,
                params=logged_params,
                metrics=metrics,
                step=step,
                steps=result.steps,
            )
        if result.traceback:
            self.tracker.log_text(
                run_id, scrub(result.traceback, self.secrets), "error/traceback.txt"
            )
        for name, path in result.artifacts.items():
            if Path(path).exists():
                self.tracker.log_artifact(run_id, path, name if Path(path).is_dir() else None)
        if result.run_id:
            self.tracker.end_run(run_id, status, end_time=result.ended or None)

    # -- resume ----------------------------------------------------------------------------
    def recover(self, study: optuna.Study) -> None:
        """Fail the trials a dead driver left running (and queue them again); fill MLflow gaps."""
        from optuna.trial import TrialState

        recorded = {
            r.data.tags.get(TAG_TRIAL)
            for r in self.tracker.child_runs(self.config.name, self.parent_run_id)
        }
        storage = study._storage
        for t in study.get_trials(deepcopy=False):
            error: str | None
            if t.state == TrialState.RUNNING:
                storage.set_trial_user_attr(t._trial_id, ATTR_INTERRUPTED, True)
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                study.enqueue_trial(t.params, user_attrs={"ml_experiment.rerun_of": t.number})
                state, error = (
                    "fail",
                    "interrupted: the driver stopped while this trial ran; re-queued",
                )
            elif t.state.is_finished() and str(t.number) not in recorded:
                state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(
                    t.state, "fail"
                )
                error = t.user_attrs.get(ATTR_ERROR)
            else:
                continue
            if str(t.number) in recorded:
                continue
            metrics = {}
            if state == "complete" and t.values:
                metrics = dict(zip((m.name for m in self.metrics), t.values, strict=False))
            start = t.datetime_start.timestamp() if t.datetime_start else time.time()
            result = TrialResult(
                state=state, metrics=metrics, error=error, started=start, ended=time.time()
            )
            self.record_trial(t, self.user_params(t.params), result, None)

    def done_count(self, study: optuna.Study) -> int:
        from optuna.trial import TrialState

        n = 0
        for t in study.get_trials(deepcopy=False):
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
                n += 1
                self.counts["complete" if t.state == TrialState.COMPLETE else "pruned"] += 1
            elif t.state == TrialState.FAIL and not t.user_attrs.get(ATTR_INTERRUPTED):
                n += 1
                self.counts["fail"] += 1
        return n

    # -- the loop --------------------------------------------------------------------------
    def user_params(self, flat_values: dict[str, Any]) -> dict[str, Any]:
        searched = unflatten_params(
            self.space, {k: v for k, v in flat_values.items() if k in self.flat}
        )
        given = {**self.config.params, **searched}
        return bind_params(
            self.job_fn.signature,
            given,
            fn_name=self.job_fn.name,
            source=self.config.source,
            searched=self.config.param_space,  # helper A: only fixed params are type-checked
        )

    def run(self) -> GroupOutcome:
        from ml_experiment.tracking.console import ConsoleCapture

        started = time.time()
        study = self.open_study()
        self.study = study
        self.parent_run_id = self.start_parent(study)
        self.data_tags: dict[str, str] = {}
        progress = GroupProgress(self.config.name, self.config.num_trials)
        error: BaseException | None = None
        with tempfile.TemporaryDirectory(prefix="mlx-") as tmp:
            console_path = Path(tmp) / "console.log"
            try:
                with ConsoleCapture(console_path), ray_session(self.config):
                    if self.resume:
                        self.recover(study)
                    done = self.done_count(study)
                    progress.start(done, self.counts)
                    self.callbacks(
                        "on_job_start", config=self.config, run_id=self.parent_run_id, study=study
                    )
                    try:
                        self._loop(study, self.config.num_trials - done, progress)
                    finally:
                        progress.stop()
            except BaseException as exc:
                error = exc
            finally:
                self._finish(study, started, console_path, error)
        if error is not None:
            if isinstance(error, KeyboardInterrupt):
                done = sum(self.counts.values())
                print(
                    f"group {self.config.name!r} interrupted after {done} of "
                    f"{self.config.num_trials} trials; run the same command with --resume to "
                    "continue it",
                    file=sys.stderr,
                )
            raise error
        if self.counts["complete"] == 0 and self.counts["fail"] > 0:
            raise RunFailedError(
                f"group {self.config.name!r}: all {self.counts['fail']} trials failed; see run "
                f"{self.parent_run_id} in the knowledge center"
            )
        return GroupOutcome(
            self.parent_run_id, self.config.name, dict(self.counts), self._best(study)
        )

    def _data_ref(self) -> list[Any] | None:
        loader = self.job_fn.options.data_loader
        if loader is None:
            return None
        import ray

        from ml_experiment.tracking.fingerprint import fingerprint

        data = loader._compute()
        self.data_tags = {f"data.fingerprint.{loader.__name__}": fingerprint(data)}
        self.tracker.log(self.parent_run_id, tags=self.data_tags)
        ref = ray.put(data)
        del data  # the object store holds the only copy from here on
        return [ref]

    def _loop(self, study: optuna.Study, to_run: int, progress: GroupProgress) -> None:
        import ray

        from ml_experiment.tracking.seeds import derive_seed

        remote = ray.remote(execute_trial).options(
            num_cpus=self.config.resources_per_worker.cpu,
            num_gpus=self.config.resources_per_worker.gpu or None,
            max_retries=0,
        )
        slots = _slots(self.config)
        data_ref = self._data_ref()
        timeout = self.config.timeout_per_trial
        live_run = None
        if self.job_fn.options.autologging_backends:
            live_run = (self.kc, self.config.name, self.parent_run_id)
        pending: dict[Any, tuple[optuna.Trial, dict[str, Any], int | None, float]] = {}
        dispatched = 0
        # MLflow writes run beside sampling and dispatch, in trial-completion order.
        writer = BackgroundWriter()

        def dispatch() -> None:
            nonlocal dispatched
            trial = study.ask(self.distributions)
            params = self.user_params(trial.params)
            seed = (
                derive_seed(self.config.seed, trial.number)
                if self.config.seed is not None
                else None
            )
            spec = TrialSpec(
                script=str(self.script),
                fn_name=self.job_fn.name,
                number=trial.number,
                trial_id=trial._trial_id,
                params=params,
                seed=seed,
                study_name=self.config.name,
                storage_path=self.storage_path,
                pruner=self.config.pruner,
                metric_names=[m.name for m in self.metrics],
                log_seeds=self.job_fn.options.log_seeds,
                data_ref=data_ref,
                live_run=live_run,
            )
            self.callbacks("on_trial_start", config=self.config, trial=trial, sampled_params=params)
            pending[remote.remote(spec)] = (trial, params, seed, time.time())
            dispatched += 1

        ctrl_c = _CtrlC()
        try:
            while True:
                ctrl_c.check()
                while len(pending) < slots and dispatched < to_run:
                    dispatch()
                progress.update(running=len(pending), counts=self.counts, best=self.best_value)
                if not pending:
                    return
                wait_s = _POLL_S
                if timeout is not None:
                    oldest = min(t0 for *_, t0 in pending.values())
                    wait_s = min(wait_s, max(0.0, oldest + timeout - time.time()))
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=wait_s)
                expired: list[Any] = []
                if not ready and timeout is not None:
                    now = time.time()
                    expired = [r for r, (*_, t0) in pending.items() if now - t0 >= timeout]
                    for ref in expired:
                        ray.cancel(ref, force=True)
                finished = []
                for ref in [*ready, *expired]:
                    trial, params, seed, t0 = pending.pop(ref)
                    finished.append((trial, params, seed, self._result(ref, t0, ref in expired)))
                # Tell the study and refill the free workers before the slower MLflow writes.
                told = [
                    (self._tell(study, trial, r), params, r, seed)
                    for trial, params, seed, r in finished
                ]
                while len(pending) < slots and dispatched < to_run:
                    dispatch()
                for frozen, params, result, seed in told:
                    writer.submit(self.record_trial, frozen, params, result, seed)
                    self.callbacks(
                        "on_info_logged",
                        config=self.config,
                        metrics=result.metrics,
                        artifacts=result.artifacts,
                        trial=frozen,
                    )
                    self.callbacks(
                        "on_trial_end",
                        config=self.config,
                        trial=frozen,
                        metric=frozen.values[0]
                        if frozen.values and len(frozen.values) == 1
                        else frozen.values,
                        exception=result.error if result.state == "fail" else None,
                        duration=result.ended - result.started if result.started else None,
                    )
        finally:
            ctrl_c.restore()
            if pending:
                # Interrupted (Ctrl-C / error): stop the workers; --resume re-runs these trials.
                for ref in pending:
                    ray.cancel(ref, force=True)
            writer.close()  # every told trial reaches MLflow before the group ends

    def _result(self, ref: Any, t0: float, timed_out: bool) -> TrialResult:
        import ray

        now = time.time()
        if timed_out:
            return TrialResult(
                state="fail",
                error=f"timed out: ran longer than timeout_per_trial={self.config.timeout_per_trial}s "
                "and was stopped",
                started=t0,
                ended=now,
            )
        try:
            result: TrialResult = ray.get(ref)
            return result
        except ray.exceptions.RayError as exc:
            text = str(exc).strip()
            first = text.splitlines()[0] if text else ""
            return TrialResult(
                state="fail",
                error=f"the worker process died ({type(exc).__name__}): {first}"[:2000],
                started=t0,
                ended=now,
            )

    def _tell(self, study: optuna.Study, trial: optuna.Trial, result: TrialResult) -> Any:
        from optuna.trial import TrialState

        if result.state == "complete":
            values = [result.metrics[m.name] for m in self.metrics]
            if any(not math.isfinite(v) for v in values):
                result.state, result.error = "fail", f"the objective is not finite: {values}"
        if result.error:
            from ml_experiment.tracking._capture import scrub

            trial.set_user_attr(ATTR_ERROR, scrub(result.error, self.secrets)[:2000])
        if result.state == "complete":
            frozen = study.tell(trial, values)
            value = values[0] if len(values) == 1 else None
            if value is not None:
                better = self.best_value is None or (
                    value > self.best_value
                    if self.metrics[0].direction == "maximize"
                    else value < self.best_value
                )
                if better:
                    self.best_value = value
        elif result.state == "pruned":
            frozen = study.tell(trial, state=TrialState.PRUNED)
        else:
            frozen = study.tell(trial, state=TrialState.FAIL)
        self.counts[result.state] += 1
        return frozen

    # -- summary ---------------------------------------------------------------------------
    def _best(self, study: optuna.Study) -> list[dict[str, Any]]:
        from optuna.trial import TrialState

        if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
            return []
        best = [study.best_trial] if len(self.metrics) == 1 else study.best_trials
        return [
            {
                "number": t.number,
                "params": self.user_params(t.params),
                "values": dict(zip((m.name for m in self.metrics), t.values, strict=False)),
            }
            for t in best
        ]

    def _finish(
        self, study: optuna.Study, started: float, console_path: Path, error: BaseException | None
    ) -> None:
        from ml_experiment.tracking._capture import scrub

        duration = time.time() - started
        run_id = self.parent_run_id
        best = self._best(study)
        metrics: dict[str, float] = {
            "trials_complete": self.counts["complete"],
            "trials_failed": self.counts["fail"],
            "trials_pruned": self.counts["pruned"],
            "total_time_s": duration,
        }
        tags: dict[str, Any] = {}
        if len(self.metrics) == 1 and best:
            b = best[0]
            metrics["best_trial_number"] = b["number"]
            metrics[f"best_{self.metrics[0].name}"] = b["values"][self.metrics[0].name]
            tags.update(
                {
                    f"best_params.{k}": v if isinstance(v, str) else json.dumps(v, default=str)
                    for k, v in b["params"].items()
                }
            )
            tags["best_trial_number"] = b["number"]
            self.tracker.log_text(run_id, json.dumps(b, indent=2, default=str), "best_trial.json")
        elif best:
            tags["pareto_front_size"] = len(best)
            self.tracker.log_text(
                run_id, json.dumps(best, indent=2, default=str), "pareto_front.json"
            )
        if self.callbacks.failures:
            tags["callbacks.failed"] = "; ".join(self.callbacks.failures)[:5000]
        if error is not None:
            tags["error"] = scrub(f"{type(error).__name__}: {error}", self.secrets)[:5000]
        self.tracker.log(run_id, metrics=metrics, tags=tags)
        if console_path.exists():
            text = console_path.read_text(encoding="utf-8", errors="replace")
            self.tracker.log_text(run_id, scrub(text, self.secrets), "logs/console.log")
        status = (
            "FINISHED"
            if error is None
            else ("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        )
        self.tracker.end_run(run_id, status)
        b0 = best[0] if len(best) == 1 else None
        self.callbacks(
            "on_job_end",
            config=self.config,
            exception=error,
            duration=duration,
            best_value=(
                next(iter(b0["values"].values())) if b0 else [b["values"] for b in best] or None
            ),
            best_params=b0["params"] if b0 else None,
            run_id=run_id,
            study=study,
            counts=dict(self.counts),
        )


def run_group(
    config: Any, job_fn: JobFunction, *, script: Path, resume: bool = False
) -> GroupOutcome:
    """Run (or with ``resume`` continue) the group described by ``config``."""
    return GroupRunner(config, job_fn, script, resume=resume).run()
