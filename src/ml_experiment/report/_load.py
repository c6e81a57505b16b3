"""Reads what a report shows from the knowledge center: the run, its trials, and the study.

A group's trials come from its Optuna study when the journal is reachable and belongs to this
parent run; otherwise the study is rebuilt in memory from the MLflow child runs, so every plot
has the same input either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_experiment.exceptions import ConfigError
from ml_experiment.report._rebuild import curve_sample, rebuild_study

if TYPE_CHECKING:
    import optuna
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

TAG_KIND = "ml_experiment.kind"
TAG_STUDY = "ml_experiment.study"
TAG_STUDY_STORAGE = "ml_experiment.study_storage"
TAG_TRIAL = "ml_experiment.trial_number"
TAG_STATE = "ml_experiment.trial_state"
TAG_WORKER = "ml_experiment.worker"
TAG_PARENT = "mlflow.parentRunId"
ATTR_PARENT = "ml_experiment.parent_run_id"
ATTR_INTERRUPTED = "ml_experiment.interrupted"
ATTR_ERROR = "ml_experiment.error"

_SCAN_PAGE, _SCAN_PAGES = 500, 20
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_METRIC = re.compile(r"\s*(.+?) \((maximize|minimize)\)\s*(?:,|$)")


@dataclass
class TrialRow:
    """One trial as the report shows it (one row of the table, one bar of the timeline)."""

    number: int
    state: str  # complete | pruned | fail | running
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    start: float | None = None  # epoch seconds
    end: float | None = None
    error: str | None = None
    run_id: str | None = None
    worker: str | None = None

    @property
    def duration(self) -> float | None:
        d = self.metrics.get("duration_s")
        if d is None and self.start is not None and self.end is not None:
            d = self.end - self.start
        return d


@dataclass
class GroupData:
    """A group: its parent run, trials in number order, and an Optuna study to plot from."""

    name: str
    parent: Run
    experiment_id: str
    objectives: list[tuple[str, str]]  # (metric name, direction)
    trials: list[TrialRow]
    study: optuna.Study
    study_source: str
    searched: list[str]


@dataclass
class ExperimentData:
    """One tracked run: params, final metrics, step histories and the recorded environment."""

    name: str
    run: Run
    experiment_id: str
    histories: dict[str, list[tuple[int, float]]]


def open_client(tracking_uri: str | None) -> tuple[MlflowClient, str]:
    """An MlflowClient on the knowledge center (the job's default when ``tracking_uri`` is None)."""
    from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

    kc = KnowledgeCenter.resolve(tracking_uri)
    if kc.tracking_uri.startswith("sqlite:///"):
        db = Path(kc.tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():  # opening it would create an empty knowledge center
            raise ConfigError(
                f"there is no knowledge center at {db}; pass --tracking_uri or run this where "
                "the runs were made",
                field="tracking_uri",
            )
    return MLflowTracker(kc).client, kc.tracking_uri


def resolve_run(client: MlflowClient, key: str, uri: str) -> Run:
    """The run called ``key``: a run id, else the latest group (or top-level run) of that name."""
    from mlflow.exceptions import MlflowException

    if _RUN_ID.fullmatch(key):
        try:
            return client.get_run(key)
        except MlflowException:
            pass
    try:
        exp = client.get_experiment_by_name(key)
    except MlflowException:
        exp = None
    if exp is not None:
        newest = ["attributes.start_time DESC"]
        groups = client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{TAG_KIND}` = 'group'",
            order_by=newest,
            max_results=1,
        )
        if groups:
            return groups[0]
        # No group: the newest top-level run (a group's trials would fill the first pages).
        token = None
        for _ in range(_SCAN_PAGES):
            page = client.search_runs(
                [exp.experiment_id], order_by=newest, max_results=_SCAN_PAGE, page_token=token
            )
            top = [r for r in page if TAG_PARENT not in r.data.tags]
            if top:
                return top[0]
            token = page.token
            if not token:
                break
    raise ConfigError(
        f"no run id or group named {key!r} in the knowledge center {uri}",
        field="RUN_ID_OR_GROUP_NAME",
    )


def is_group(run: Run) -> bool:
    return run.data.tags.get(TAG_KIND) == "group"


def objectives_of(parent: Run) -> list[tuple[str, str]]:
    """The parent's ``metric`` param, e.g. ``acc (maximize), loss (minimize)``."""
    text = parent.data.params.get("metric", "")
    found = [(m.group(1).strip(), m.group(2)) for m in _METRIC.finditer(text)]
    return found or [("objective", "minimize")]


def _child_runs(client: MlflowClient, exp_id: str, parent_id: str) -> list[Run]:
    from ml_experiment.tracking._mlflow import child_runs

    return child_runs(client, exp_id, parent_id)


def _row_from_run(run: Run) -> TrialRow | None:
    tags = run.data.tags
    try:
        number = int(tags[TAG_TRIAL])
    except (KeyError, ValueError):
        return None
    end = run.info.end_time
    return TrialRow(
        number=number,
        state=tags.get(TAG_STATE, "complete" if run.info.status == "FINISHED" else "fail"),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        start=run.info.start_time / 1000 if run.info.start_time else None,
        end=end / 1000 if end else None,
        error=tags.get("error"),
        run_id=run.info.run_id,
        worker=tags.get(TAG_WORKER),
    )


def _load_study(parent: Run) -> optuna.Study | None:
    """The group's own study from its journal, or None when it cannot be read or is another's."""
    import optuna

    name = parent.data.tags.get(TAG_STUDY)
    path = parent.data.tags.get(TAG_STUDY_STORAGE)
    if not name or not path:
        return None
    storage: Any = path
    if "://" not in path:  # a journal file; otherwise an Optuna storage URL (postgresql://...)
        if not Path(path).is_file():
            return None
        from ml_experiment.hpo import open_storage

        storage = open_storage(path)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except Exception:  # missing, unreachable or unreadable: MLflow has the trials too
        return None
    if study.user_attrs.get(ATTR_PARENT) not in (None, parent.info.run_id):
        return None
    # A journal study re-reads its file on every get_trials (each plot calls it several
    # times: ~0.3 s each at 2,000 trials); an in-memory copy reads it once.
    copy = optuna.create_study(study_name=study.study_name, directions=study.directions)
    copy.add_trials(study.get_trials(deepcopy=False))
    return copy


_STATE_NAMES = {
    "COMPLETE": "complete",
    "PRUNED": "pruned",
    "FAIL": "fail",
    "RUNNING": "running",
    "WAITING": "waiting",  # re-queued after an interrupted driver, not started again yet
}


def _merge(study: optuna.Study, rows: dict[int, TrialRow], names: list[str]) -> list[TrialRow]:
    """Trials of the study, completed by their MLflow run where one was recorded."""
    out: list[TrialRow] = []
    for t in study.get_trials(deepcopy=False):
        row = rows.pop(t.number, None)
        state = _STATE_NAMES.get(t.state.name, "running")
        if row is None:
            row = TrialRow(number=t.number, state=state, params=dict(t.params))
            if t.values:
                row.metrics.update(zip(names, t.values, strict=False))
            row.start = t.datetime_start.timestamp() if t.datetime_start else None
            row.end = t.datetime_complete.timestamp() if t.datetime_complete else None
            row.error = t.user_attrs.get(ATTR_ERROR)
        if t.user_attrs.get(ATTR_INTERRUPTED) and not row.error:
            row.error = "interrupted: the driver stopped while this trial ran; re-queued"
        out.append(row)
    out.extend(rows.values())  # runs the study does not know (should not happen): still shown
    return sorted(out, key=lambda r: r.number)


def load_group(client: MlflowClient, parent: Run) -> GroupData:
    """Everything a group report shows, from the study when reachable, else from MLflow."""
    exp_id = parent.info.experiment_id
    objectives = objectives_of(parent)
    names = [n for n, _ in objectives]
    rows = {}
    for run in _child_runs(client, exp_id, parent.info.run_id):
        row = _row_from_run(run)
        if row is not None:
            rows[row.number] = row
    study = _load_study(parent)
    if study is not None:
        trials = _merge(study, rows, names)
        searched = sorted({p for t in study.get_trials(deepcopy=False) for p in t.params})
        source = f"Optuna study {study.study_name!r} ({parent.data.tags[TAG_STUDY_STORAGE]})"
    else:
        trials = sorted(rows.values(), key=lambda r: r.number)
        searched = sorted(
            k.removeprefix("param_space.")
            for k in parent.data.params
            if k.startswith("param_space.")
        )
        histories: dict[int, dict[int, float]] = {}
        for r in curve_sample(trials, names[0], objectives[0][1] == "maximize"):
            points = client.get_metric_history(str(r.run_id), names[0])
            if len(points) > 1:
                histories[r.number] = {p.step: p.value for p in points}
        study = rebuild_study(trials, objectives, searched, histories)
        source = "rebuilt from the MLflow child runs (the Optuna study was not reachable)"
    return GroupData(
        name=parent.data.tags.get("mlflow.runName") or parent.info.run_name or exp_id,
        parent=parent,
        experiment_id=exp_id,
        objectives=objectives,
        trials=trials,
        study=study,
        study_source=source,
        searched=searched,
    )


def load_experiment(client: MlflowClient, run: Run) -> ExperimentData:
    """One run with the step history of each of its metrics."""
    histories = {
        key: [(p.step, p.value) for p in client.get_metric_history(run.info.run_id, key)]
        for key in sorted(run.data.metrics)
    }
    exp = client.get_experiment(run.info.experiment_id)
    return ExperimentData(
        name=exp.name, run=run, experiment_id=run.info.experiment_id, histories=histories
    )
