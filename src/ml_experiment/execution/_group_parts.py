"""The pieces of a group that are plain functions: its objectives, its params, its run records."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ml_experiment.config import MetricConfig
from ml_experiment.exceptions import ConfigError
from ml_experiment.execution.sweeper import ATTR_REPLAY_OF

if TYPE_CHECKING:
    from ml_experiment._job import JobFunction
    from ml_experiment.execution._worker import TrialResult
    from ml_experiment.execution.sweeper import Told
    from ml_experiment.tracking._mlflow import MLflowTracker
    from ml_experiment.tracking.record import RunRecord
    from ml_experiment.tracking.recorder import Recorder

TAG_TRIAL = "ml_experiment.trial_number"
TAG_STATE = "ml_experiment.trial_state"
TAG_WORKER = "ml_experiment.worker"
TAG_REPLAY_OF = "ml_experiment.replay_of"
TAG_NODE = "ml_experiment.node"  # the Ray node id
MLFLOW_STATUS = {"complete": "FINISHED", "fail": "FAILED", "pruned": "KILLED"}


@dataclass
class GroupOutcome:
    run_id: str
    study_name: str
    counts: dict[str, int]
    best_trials: list[dict[str, Any]] = field(default_factory=list)
    value: Any = None
    duration: float = 0.0
    failures: list[tuple[int, str]] = field(default_factory=list)  # (trial number, reason)


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


def fixed_params(config: Any) -> tuple[dict[str, Any], list[str]]:
    """The job's fixed params, less those it also searches (the search wins), and a notice each."""
    both = [name for name in config.params if name in config.param_space]
    notices = [
        f"{name!r} is in params and in param_space: the searched value is used" for name in both
    ]
    return {k: v for k, v in config.params.items() if k not in both}, notices


def trial_record(
    experiment: str,
    parent_run_id: str | None,
    told: Told,
    params: dict[str, Any],
    result: TrialResult,
    seed: int | None,
    data: dict[str, str],
) -> RunRecord:
    """A trial's child run, from what the study and the worker know of it."""
    from ml_experiment.tracking._capture import run_tags
    from ml_experiment.tracking.record import RunRecord

    number = told.frozen.number
    now = time.time()
    started = result.started or (
        told.frozen.datetime_start.timestamp() if told.frozen.datetime_start else now
    )
    metrics = dict(result.metrics)
    if result.ended and result.started:
        metrics["duration_s"] = result.ended - result.started
    tags: dict[str, Any] = {TAG_TRIAL: number, TAG_STATE: told.state}
    tags.update({k: v for k, v in run_tags().items() if k.startswith("container.")})  # Docker
    if result.pid:
        tags[TAG_WORKER] = result.pid
    if result.node:
        tags[TAG_NODE] = result.node
    replay_of = told.frozen.user_attrs.get(ATTR_REPLAY_OF)
    if replay_of is not None:
        tags[TAG_REPLAY_OF] = replay_of
    if result.determinism is not None:
        from ml_experiment.execution._determinism import determinism_tags

        tags.update(determinism_tags(True, result.determinism))
    return RunRecord(
        experiment=experiment,
        name=f"trial-{number}",
        parent_run_id=parent_run_id,
        run_id=result.run_id,
        status=MLFLOW_STATUS[told.state],
        start_time=started,
        end_time=result.ended or now,
        params=params,
        metrics=metrics,
        steps=result.steps,
        tags=tags,
        artifacts=dict(result.artifacts),
        seeds={**({"seed": str(seed)} if seed is not None else {}), **result.seeds},
        data=data,
        console=None if result.stored else result.console,
        error=told.error,
        traceback=result.traceback,
    )


def best_trials(group: Any) -> list[dict[str, Any]]:
    """The best trial (or the Pareto front): its number, the job's parameters, its values."""
    return [
        {
            "number": t.number,
            "params": group.user_params(t.params),
            "values": group.sweeper.metric_values(t),
        }
        for t in group.sweeper.best()
    ]


def summarise(
    record: RunRecord,
    best: list[dict[str, Any]],
    metric_names: list[str],
    counts: dict[str, int],
    duration: float,
) -> None:
    """The trial counts, the time and the best trial (or the Pareto front) on the parent run;
    secret-named params redacted."""
    from ml_experiment.tracking.redact import redact_params

    record.metrics = {
        "trials_complete": counts["complete"],
        "trials_failed": counts["fail"],
        "trials_pruned": counts["pruned"],
        "total_time_s": duration,
    }
    shown = [{**b, "params": redact_params(b["params"])} for b in best]
    if len(metric_names) == 1 and best:
        name = metric_names[0]
        record.metrics["best_trial_number"] = best[0]["number"]
        record.metrics[f"best_{name}"] = best[0]["values"][name]
        record.tags.update(
            {
                f"best_params.{k}": v if isinstance(v, str) else json.dumps(v, default=str)
                for k, v in shown[0]["params"].items()
            }
        )
        record.tags["best_trial_number"] = best[0]["number"]
        record.artifacts["best_trial.json"] = _json(shown[0])
    elif best:
        record.tags["pareto_front_size"] = len(best)
        record.artifacts["pareto_front.json"] = _json(shown)


def job_end(group: Any, error: BaseException | None, duration: float, best: list[Any]) -> None:
    """The callbacks' ``on_job_end``: the best value and params when there is one best trial."""
    b0 = best[0] if len(best) == 1 else None
    group.callbacks(
        "on_job_end",
        config=group.config,
        exception=error,
        duration=duration,
        best_value=(
            next(iter(b0["values"].values())) if b0 else [b["values"] for b in best] or None
        ),
        best_params=b0["params"] if b0 else None,
        run_id=group.parent.run_id,
        study=group.sweeper.study,
        counts=dict(group.counts),
    )


def interrupted_message(config: Any, counts: dict[str, int]) -> str:
    done = sum(counts.values())
    return (
        f"group {config.name!r} interrupted after {done} of {config.num_trials} trials; run the "
        "same command with --resume to continue it"
    )


def recorded_numbers(group: Any) -> set[int]:
    """The trials a resumed group's parent run has records of (not those only opened)."""
    runs = group.recorder.tracker.child_runs(group.config.name, group.parent.run_id or "")
    return {
        int(r.data.tags[TAG_TRIAL])
        for r in runs
        if TAG_TRIAL in r.data.tags and r.info.status != "RUNNING"  # opened, not written
    }


def group_report(parent_run_id: str, tracker: MLflowTracker) -> str | None:
    """The group's report, logged to the parent run; a failure to make it fails nothing."""
    from ml_experiment.report import build_report

    try:
        index = build_report(
            parent_run_id,
            tracking_uri=tracker.kc.tracking_uri,
            log_to_run=True,
            client=tracker.client,
        )
    except Exception as exc:
        print(f"the group's report could not be made: {exc}", file=sys.stderr)
        return None
    return str(index)


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, default=str).encode("utf-8")


def write_trial(
    recorder: Recorder, record: RunRecord, number: int, *, opened_remotely: bool = False
) -> None:
    """Write a trial's record, waiting out an unreachable store; never the same trial twice.

    ``opened_remotely``: workers open their trials' runs; one that died left its run open.
    """
    from ml_experiment.tracking._outage import through_outage

    def find_written() -> None:  # an attempt that failed after the store took the run
        if record.run_id is not None:
            return
        client = recorder.tracker.client
        found = client.search_runs(
            [recorder.tracker.experiment_id(record.experiment)],
            filter_string=f"tags.`mlflow.parentRunId` = '{record.parent_run_id}' and "
            f"tags.`{TAG_TRIAL}` = '{number}'",
            max_results=1,
        )
        if found:
            record.run_id = found[0].info.run_id
            done.append(found[0].info.status != "RUNNING")

    done: list[bool] = []
    if opened_remotely and record.run_id is None:
        find_written()
        done.clear()  # a run its dead worker opened is still to be completed

    def write() -> None:
        if not (done and done[-1]):
            recorder.write(record)

    through_outage(write, before_retry=find_written, where=recorder.tracker.kc.tracking_uri)
