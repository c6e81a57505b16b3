"""A group: one Optuna study, trials run in parallel on Ray, one MLflow child run each.

The driver owns every decision and every write: the sweeper asks the sampler for each trial (so
one sampler decides all parameters), the executor runs it on a free worker, the study is told
the result and the recorder writes the child run. Workers only compute.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_experiment._exit import group_ended
from ml_experiment._gc import Hold
from ml_experiment._output import trial_output
from ml_experiment._tmp import private_dir
from ml_experiment.callbacks._dispatch import CallbackDispatcher
from ml_experiment.config import flatten_space, unflatten_params
from ml_experiment.exceptions import ConfigError, Interrupted, RunFailedError
from ml_experiment.execution._group_parts import (
    GroupOutcome,
    best_trials,
    fixed_params,
    group_metrics,
    group_report,
    interrupted_message,
    job_end,
    recorded_numbers,
    summarise,
    trial_record,
    write_trial,
)
from ml_experiment.execution._invoke import bind_params
from ml_experiment.execution._progress import GroupProgress
from ml_experiment.execution._ray import check_init_kwargs, code_dir, slots
from ml_experiment.execution._signals import SafePointStop, interrupts_raise
from ml_experiment.execution._startup import (
    Phases,
    RayStart,
    load_data,
    open_store,
    parent_record,
    start_parent,
)
from ml_experiment.execution._summary import group_summary, show
from ml_experiment.execution._worker import TrialResult, TrialSpec
from ml_experiment.execution._writer import BackgroundWriter
from ml_experiment.execution.executor import RayExecutor
from ml_experiment.execution.loop import run_trials
from ml_experiment.execution.sweeper import ATTR_SEED, Sweeper, Told
from ml_experiment.tracking.redact import redact_params, scrub, secret_values

if TYPE_CHECKING:
    import optuna

    from ml_experiment._job import JobFunction
    from ml_experiment.tracking.recorder import Recorder


class GroupRun:
    """Drives one group from start (or resume) to its outcome."""

    recorder: Recorder  # set by open_store: at once, or on the writer's thread

    def __init__(
        self,
        config: Any,
        job_fn: JobFunction,
        script: Path,
        *,
        resume: bool,
        ray: RayStart,
        hold: Hold,
    ) -> None:
        from ml_experiment.tracking._mlflow import KnowledgeCenter

        self.config = config
        self.ray = ray
        self.hold = hold
        self.phases = ray.phases
        self.job_fn = job_fn
        self.script = script.resolve()
        self.metrics = group_metrics(config, job_fn)
        self.fixed, self.notices = fixed_params(config)
        bind_params(
            job_fn.signature,
            {**self.fixed, **dict.fromkeys(config.param_space)},
            fn_name=job_fn.name,
            source=config.source,
            searched=set(config.param_space),
        )
        self.flat = flatten_space(config.param_space)
        self.kc = KnowledgeCenter.resolve(config.tracking_uri)
        from ml_experiment.hpo import storage_kind, study_location

        self.storage_path = study_location(config.study_storage, self.kc.studies_path)
        if (
            resume
            and storage_kind(self.storage_path) == "journal"
            and not Path(self.storage_path).exists()
        ):
            raise ConfigError(
                f"--resume: there is no study named {config.name!r} to resume; run without "
                "--resume to start one",
                source=config.source,
                field="name",
            )
        check_init_kwargs(config)
        # The input is checked: Ray comes up meanwhile (seconds), everything else needs no Ray.
        ray.start()
        self._prepare(config, job_fn, resume)

    def _prepare(self, config: Any, job_fn: JobFunction, resume: bool) -> None:
        from ml_experiment.hpo import open_storage
        from ml_experiment.tracking._store import can_open_later

        self.callbacks = CallbackDispatcher.for_job(config, job_fn)
        self.secrets = secrets = [*self.callbacks.secrets(), *secret_values(config.params)]
        # The store opens on the writer's thread, beside Ray's start, unless something before the
        # trials needs it (a resumed study, callbacks, autologging); joining a running cluster, it
        # waits until this job's workers are up and trials dispatched, not to slow their start.
        self.store_later = not (
            resume or self.callbacks.callbacks or job_fn.options.autologging_backends
        ) and can_open_later(self.kc, config.name, "group")
        self.store_waits = self.store_later and bool(config.ray_config.address)
        self.pending = {open_store: self.store_later, start_parent: self.store_later}
        self.writer = BackgroundWriter()
        if not self.store_later:
            open_store(self)  # a deleted name, or an experiment's: bad input before a study
        self.phases.begin("study")
        self.sweeper = Sweeper(
            name=config.name,
            storage=open_storage(self.storage_path),
            metrics=self.metrics,
            distributions={k: d.to_optuna() for k, d in self.flat.items()},
            sampler=config.sampler,
            pruner=config.pruner,
            seed=config.seed,
            resume=resume,
            source=config.source,
            scrub=lambda text: scrub(text, secrets),
            replay=config.replay,
        )
        self.phases.end("study")
        with self.phases.span("capture"):
            self.parent = parent_record(self)
        self.counts = self.sweeper.counts()
        self.failures: list[tuple[int, str]] = []
        self.data: dict[str, str] = {}
        self.data_ref: list[Any] | None = None
        self.progress = GroupProgress(config.name, config.num_trials)
        self.stop = SafePointStop(self._interrupted_message)
        if not self.store_waits:  # not sooner: MLflow's imports beside Ray's slow its start
            self._store_on_writer(parent=False)

    def _store_on_writer(self, parent: bool = True) -> None:
        """Open the store (and start the parent run) on the writer, unless done or submitted."""
        for step in (open_store, start_parent) if parent else (open_store,):
            if self.pending[step]:
                self.pending[step] = False
                self.writer.submit(step, self)

    # -- one run from start to end ------------------------------------------------------------
    def run(self) -> GroupOutcome:
        from ml_experiment.tracking.console import ConsoleCapture

        for notice in [*self.notices, *filter(None, [self.sweeper.notice])]:
            print(notice, file=sys.stderr, flush=True)
        error: BaseException | None = None
        with private_dir() as tmp:
            console_path = Path(tmp) / "console.log"
            try:
                with interrupts_raise(self._interrupted_message()):
                    if not self.store_later:
                        start_parent(self)
                    with ConsoleCapture(console_path):
                        self._run_trials()
            except BaseException as exc:
                error = exc
            finally:
                self.ray.release()  # Ray shuts down while the group's end is written
                if console_path.exists():
                    self.parent.console = console_path.read_text("utf-8", errors="replace")
        with self.phases.span("finish"):
            return self._finish(error)

    def _run_trials(self) -> None:
        try:
            self._trials()
        finally:
            self.phases.mark("trials_end")
            self.progress.stop()
            self.ray.release()  # the trials are over: Ray shuts down while the records are written
            self._store_on_writer(parent=False)  # _finish records how it ended
            with self.phases.span("records"):
                self.writer.close()  # every told trial reaches MLflow before the group ends

    def _trials(self) -> None:
        if self.sweeper.resumed:
            for told in self.sweeper.recover(recorded_numbers(self)):
                self._record(told, self._recorded_params(told), TrialResult(told.state))
            self.counts = self.sweeper.counts()
        with self.phases.span("data"):
            data = load_data(self)
        if not self.store_waits:  # the parent run carries the data's fingerprint
            self._store_on_writer()
        with self.phases.span("ray_wait"):
            self.ray.ready()
        self.hold.done("ray")
        executor = RayExecutor(self.config, slots(self.config))
        if data is not None:
            import ray

            self.data_ref = [ray.put(data[0])]
            del data  # the object store holds the only copy from here on
        done = sum(self.counts.values())
        self.progress.start(done, self.counts)
        self.callbacks(
            "on_job_start", config=self.config, run_id=self.parent.run_id, study=self.sweeper.study
        )
        with self.stop:
            run_trials(self.sweeper, executor, self, self.config.num_trials - done)

    # -- the loop's hooks ---------------------------------------------------------------------
    def user_params(self, flat_values: dict[str, Any]) -> dict[str, Any]:
        searched = unflatten_params(
            self.config.param_space, {k: v for k, v in flat_values.items() if k in self.flat}
        )
        return bind_params(
            self.job_fn.signature,
            {**self.fixed, **searched},
            fn_name=self.job_fn.name,
            source=self.config.source,
            searched=set(searched),
        )

    def _recorded_params(self, told: Told) -> dict[str, Any]:
        try:
            return self.user_params(told.frozen.params)
        except ConfigError:  # died before all its parameters were sampled
            return dict(told.frozen.params)

    def spec(self, trial: optuna.Trial) -> TrialSpec:
        from ml_experiment.tracking.seeds import derive_seed

        seed = self.config.seed
        live_run = None
        if self.job_fn.options.autologging_backends or self.kc.remote:
            live_run = (self.kc, self.config.name, str(self.parent.run_id))
        return TrialSpec(
            script=str(self.script),
            fn_name=self.job_fn.name,
            number=trial.number,
            params=self.user_params(trial.params),
            seed=trial.user_attrs.get(
                ATTR_SEED, derive_seed(seed, trial.number) if seed is not None else None
            ),
            study_name=self.sweeper.study_name,
            storage_path=self.storage_path,
            pruner=self.config.pruner,
            metric_names=[m.name for m in self.metrics],
            log_seeds=self.job_fn.options.log_seeds,
            data_ref=self.data_ref,
            live_run=live_run,
            deterministic=self.config.deterministic,
            code_dir=code_dir(self.config) if self.config.ray_config.address else None,
        )

    def dispatched(self, trial: optuna.Trial, spec: TrialSpec) -> None:
        if "first_dispatch" not in self.phases.spans:
            self.phases.mark("first_dispatch")
        self.callbacks(
            "on_trial_start", config=self.config, trial=trial, sampled_params=spec.params
        )

    def waiting(self, running: int) -> None:
        self.stop.check()
        self.writer.check()  # a store that failed to open stops the group at once
        if self.pending[start_parent] and "first_dispatch" in self.phases.spans and self.ray.warm():
            self._store_on_writer()  # (pending here: the store waits; Ray asked until submitted)
        self.progress.update(running=running, counts=self.counts, best=self.sweeper.best_value)

    def finished(self, told: Told, spec: TrialSpec, result: TrialResult) -> None:
        console = scrub(result.console or "", [*self.secrets, *secret_values(spec.params)])
        self.progress.print(trial_output(told.frozen.number, console))
        self.counts[told.state] += 1
        if told.state == "fail":
            self.failures.append((told.frozen.number, told.error or "failed"))
        self._store_on_writer()  # at the latest: the parent run comes before any record
        self.writer.submit(self._record, told, spec.params, result, spec.seed)
        frozen = told.frozen
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
            metric=frozen.values[0] if frozen.values and len(frozen.values) == 1 else frozen.values,
            exception=told.error if told.state == "fail" else None,
            duration=result.ended - result.started if result.started else None,
        )

    def _record(
        self, told: Told, params: dict[str, Any], result: TrialResult, seed: int | None = None
    ) -> None:
        record = trial_record(
            self.config.name, self.parent.run_id, told, params, result, seed, self.data
        )
        if told.state == "complete" and not result.metrics:  # recovered: the study has them
            record.metrics.update(self.sweeper.metric_values(told.frozen))
        remote = self.kc.remote or bool(self.job_fn.options.autologging_backends)
        write_trial(self.recorder, record, told.frozen.number, opened_remotely=remote)

    # -- the end --------------------------------------------------------------------------
    def _interrupted_message(self) -> str:
        return interrupted_message(self.config, self.counts)

    def _finish(self, error: BaseException | None) -> GroupOutcome:
        record = self.parent
        if record.run_id is None and error is not None:
            if not self.store_later or getattr(self, "recorder", None) is None:
                raise error  # failed before its parent run existed: nothing to finish
            try:  # failed before the writer started the parent run: record that now
                start_parent(self)
            except Exception as exc:
                error.add_note(f"the knowledge center could not record it: {exc}")
                raise error from None
        record.end_time = time.time()
        duration = record.end_time - record.start_time
        best = best_trials(self)
        summarise(record, best, [m.name for m in self.metrics], self.counts, duration)
        if self.callbacks.failures:
            record.tags["callbacks.failed"] = "; ".join(self.callbacks.failures)
        if error is not None:
            record.error = f"{type(error).__name__}: {error}"
        interrupted = isinstance(error, KeyboardInterrupt)
        record.status = "FINISHED" if error is None else ("KILLED" if interrupted else "FAILED")
        try:
            self.recorder.finish_after(record, error)
            if error is None:
                self.sweeper.mark_finished()
        finally:
            job_end(self, error, duration, best)
        wanted = error is None and self.config.report
        report = group_report(str(record.run_id), self.recorder.tracker) if wanted else None
        show(
            group_summary(
                name=self.config.name,
                study=self.sweeper.study_name,
                run_id=record.run_id,
                counts=self.counts,
                best=[{**b, "params": redact_params(b["params"])} for b in best],
                failures=self.failures,
                duration=duration,
                report=report,
            )
        )
        if interrupted:
            signum = error.signum if isinstance(error, Interrupted) else 2
            raise Interrupted(self._interrupted_message(), signum=signum) from error
        if error is not None:
            raise error
        if self.counts["complete"] == 0 and self.counts["fail"] > 0:
            raise RunFailedError(
                f"group {self.config.name!r}: all {self.counts['fail']} trials failed; see run "
                f"{record.run_id} in the knowledge center"
            )
        return GroupOutcome(
            str(record.run_id),
            self.sweeper.study_name,
            dict(self.counts),
            best,
            duration=duration,
            failures=list(self.failures),
        )


def run_group(
    config: Any, job_fn: JobFunction, *, script: Path, resume: bool = False
) -> GroupOutcome:
    """Run (or with ``resume`` continue) the group described by ``config``."""
    phases = Phases()
    phases.mark("group")
    hold = Hold(("ray", "store"))  # the collector rests until Ray is up and the store is open
    ray = RayStart(config, phases)
    try:
        return GroupRun(config, job_fn, script, resume=resume, ray=ray, hold=hold).run()
    finally:
        hold.close()
        ray.close()  # at once if the group ended normally: it shut down while the end was written
        phases.mark("end")
        phases.write()
        group_ended()
