"""Every use of another library's private internals, in one place, each gated.

No public API does these things (or does them far slower):

- MLflow: a finished run written in one transaction on a SQL store (``write_run``). Through
  ``MlflowClient`` a group's child run costs three calls (create_run, log_batch, set_terminated)
  that MLflow's SQL store turns into ~30 ORM statements in six sessions: ~27 ms per trial here,
  most of a group's per-trial time. It uses the store's own engine and table definitions, after
  MLflow's own validation. ``tests/tracking/test_onewrite.py`` compares it field by field with
  the public path.
- MLflow: a new SQLite store's schema made by MLflow's own ``_initialize_tables`` (its initial
  tables and every Alembic migration, as ``MlflowClient`` does on an empty file) on an in-memory
  database, then copied into a new file with SQLite's backup API and moved into place
  (``create_sqlite_store``). MLflow runs its ~60 migrations on the file itself, one transaction
  and one sync each; in memory it costs the Python alone, and the store appears whole or not at
  all. MLflow offers no way to create the schema at its head revision directly (its ORM
  models alone do not even compile to valid SQLite DDL). ``tests/tracking/test_store_create.py``
  opens such a store with a stock ``MlflowClient`` and ``mlflow server``.
- Ray: a private local node started by ``ray.init`` without what such a node does not use
  (``quick_local_ray``): 1-2 s of its start on 2 cores, and ~250 MiB. Without the dashboard,
  Ray's API server process loads its usage-stats module alone (reporting is off for a group's
  node), yet ``ray.init`` polls until it is up; the autoscaler's monitor has nothing to scale;
  the log monitor forwards workers' output only to a driver that asked for it (``-v``). Ray
  checks that its dashboard's dependencies import by importing them in the driver (0.4 s before
  the raylet starts): they are looked up instead. And ``ray.init`` asks the GCS whether the
  raylet has registered once a second (a fixed sleep in its C++ accessor), so it may wait a
  second more than the raylet takes: the node is first awaited by asking every 20 ms. Tested
  on the Ray releases in :data:`RAY_TESTED`; elsewhere ``ray.init`` runs as it is (slower),
  without a warning.
- Optuna: a live ``optuna.Trial`` for a trial created elsewhere (a worker reporting intermediate
  values to the pruner). ``optuna.Trial`` is exported; its docs discourage, but do not forbid,
  calling its constructor, and no other way exists, so it has no fallback.

The MLflow paths run only on the versions in :data:`TESTED` (the range ``pyproject.toml``
allows, which the suite runs on; ``tests/test_private.py`` checks both agree); elsewhere, or on a
``TypeError``/``AttributeError``/SQL error from the private path, the caller warns once
(:func:`warn_once`) and takes the public path.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import math
import os
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

# Library -> (lowest tested, first untested) release, as "major.minor".
TESTED: dict[str, tuple[str, str]] = {"mlflow": ("3.17", "3.18"), "optuna": ("5.0", "5.1")}
# Ray's range is wider in pyproject.toml (a cluster's Ray decides the client's): only the start
# of a private local node is quicker on these.
RAY_TESTED = ("2.60", "2.61")

_warned: set[str] = set()


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


@functools.cache
def supported(library: str) -> bool:
    """Whether the installed ``library`` is in the range its private path was tested on."""
    low, high = TESTED[library]
    try:
        installed = _release(importlib.metadata.version(library))
    except importlib.metadata.PackageNotFoundError:
        return False
    ok = _release(low) <= installed < _release(high)
    if not ok:
        warn_once(
            library,
            f"{library} {importlib.metadata.version(library)} is outside the tested range "
            f"{low}-{high}; ml-experiment uses its public API only (slower)",
        )
    return ok


def warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def private_path_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the private path no longer fits the library: take the public one."""
    errors: list[type[BaseException]] = [TypeError, AttributeError, ImportError, KeyError]
    try:
        from sqlalchemy.exc import SQLAlchemyError

        errors.append(SQLAlchemyError)
    except ImportError:  # pragma: no cover - MLflow depends on SQLAlchemy
        pass
    return tuple(errors)


def run_artifact_uri(artifact_location: str, run_id: str) -> str:
    """Where MLflow keeps the artifacts of run ``run_id`` of an experiment at ``artifact_location``."""
    from mlflow.utils.uri import append_to_uri_path

    return str(append_to_uri_path(artifact_location, run_id, "artifacts"))


def artifact_repository(artifact_uri: str) -> Any | None:
    """MLflow's repository for a ``file:`` artifact URI, or ``None`` (use ``MlflowClient``).

    ``MlflowClient.log_text``/``log_artifact`` look the run up in the store first (~4 ms on
    SQLite per new run, most of a trial's console-log cost); a writer that knows the run's
    artifact URI goes to the repository directly.
    """
    if not artifact_uri.startswith("file:") or not supported("mlflow"):
        return None
    try:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        return get_artifact_repository(artifact_uri)
    except private_path_errors() as exc:
        warn_once("mlflow-artifacts", f"MLflow's artifact repositories changed ({exc!r})")
        return None


def optuna_trial(study: Any, trial_id: int) -> Any:
    """A live ``optuna.Trial`` for the existing trial ``trial_id`` of ``study``."""
    import optuna

    return optuna.Trial(study, trial_id)


def sql_store(client: Any) -> Any | None:
    """The ``SqlAlchemyStore`` behind ``client``; ``None`` for another store or an untested MLflow."""
    if not supported("mlflow"):
        return None
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = client._tracking_client.store
    except (ImportError, AttributeError):
        return None
    return store if isinstance(store, SqlAlchemyStore) else None


def _sanitize(value: float) -> tuple[bool, float]:
    # As MLflow's SQL store: NaN is stored as 0 with is_nan, +-inf as the largest doubles.
    if math.isnan(value):
        return True, 0.0
    if math.isinf(value):
        return False, math.copysign(1.7976931348623157e308, value)
    return False, value


def write_run(
    store: Any,
    *,
    experiment_id: str,
    artifact_location: str,
    run_name: str,
    tags: Mapping[str, str],
    params: Mapping[str, str],
    metrics: Sequence[Any],
    start_ms: int,
    end_ms: int,
    status: str,
) -> str | None:
    """Insert one terminated run with its tags, params and metrics; ``None`` if not possible here.

    ``metrics`` are ``mlflow.entities.Metric``. Invalid keys or values raise MLflow's own error,
    exactly as ``log_batch`` would, before anything is written.
    """
    try:
        from mlflow.entities import Param, RunTag
        from mlflow.store.tracking.dbmodels.models import (
            SqlLatestMetric,
            SqlMetric,
            SqlParam,
            SqlRun,
            SqlTag,
        )
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
        from mlflow.utils.uri import append_to_uri_path
        from mlflow.utils.validation import _validate_batch_log_data, _validate_param_keys_unique
    except ImportError:
        return None

    all_tags = {**tags, MLFLOW_RUN_NAME: run_name}
    metric_list, param_list, tag_list = _validate_batch_log_data(
        list(metrics),
        [Param(k, v) for k, v in params.items()],
        [RunTag(k, v) for k, v in all_tags.items()],
    )
    _validate_param_keys_unique(param_list)

    run_id = uuid.uuid4().hex
    metric_rows: list[dict[str, Any]] = []
    latest: dict[str, dict[str, Any]] = {}
    seen: set[tuple[Any, ...]] = set()
    for m in metric_list:
        is_nan, value = _sanitize(float(m.value))
        row = {
            "key": m.key,
            "value": value,
            "timestamp": int(m.timestamp),
            "step": int(m.step),
            "is_nan": is_nan,
            "run_uuid": run_id,
        }
        identity = tuple(row.values())
        if identity in seen:  # MLflow drops exact duplicates within a batch
            continue
        seen.add(identity)
        metric_rows.append(row)
        # The latest value of a key is the one with the highest (step, timestamp, value).
        current = latest.get(m.key)
        order = (row["step"], row["timestamp"], value)
        if current is None or order > (current["step"], current["timestamp"], current["value"]):
            latest[m.key] = row

    run_row = {
        "run_uuid": run_id,
        "name": run_name,
        "source_type": "UNKNOWN",
        "source_name": "",
        "entry_point_name": "",
        "user_id": "unknown",
        "status": status,
        "start_time": start_ms,
        "end_time": end_ms,
        "deleted_time": None,
        "source_version": "",
        "lifecycle_stage": "active",
        "artifact_uri": append_to_uri_path(artifact_location, run_id, "artifacts"),
        "experiment_id": int(experiment_id),
    }
    # Core inserts on MLflow's own tables: the ORM unit of work alone costs more than the SQL.
    inserts: list[tuple[Any, list[dict[str, Any]]]] = [
        (SqlRun, [run_row]),
        (SqlTag, [{"key": t.key, "value": t.value, "run_uuid": run_id} for t in tag_list]),
        (SqlParam, [{"key": p.key, "value": p.value, "run_uuid": run_id} for p in param_list]),
        (SqlMetric, metric_rows),
        (SqlLatestMetric, list(latest.values())),
    ]
    with store.ManagedSessionMaker(read_only=False) as session:
        for model, rows in inserts:
            if rows:
                session.execute(model.__table__.insert(), rows)
    return run_id


def create_sqlite_store(db: Path) -> bool:
    """Make the empty MLflow store ``db`` (absent or 0 bytes) at MLflow's current schema.

    Returns ``False`` where this is not possible here (untested MLflow, changed internals): the
    caller lets ``MlflowClient`` create it as usual. The caller holds the store's lock.
    """
    if not supported("mlflow"):
        return False
    import sqlite3

    tmp = db.with_name(f".{db.name}.new-{uuid.uuid4().hex[:8]}")
    try:
        import sqlalchemy
        from mlflow.store.db import utils
        from sqlalchemy.pool import StaticPool

        engine = sqlalchemy.create_engine("sqlite://", poolclass=StaticPool)
        try:
            utils._initialize_tables(engine)
            head = utils._get_latest_schema_revision()
            if utils._get_schema_version(engine) != head:
                raise KeyError(f"schema not at head {head}")
            raw = engine.raw_connection()
            try:
                target = sqlite3.connect(tmp)
                try:
                    raw.driver_connection.backup(target)  # type: ignore[union-attr]
                finally:
                    target.close()
            finally:
                raw.close()
        finally:
            engine.dispose()
        os.replace(tmp, db)
        return True
    except Exception as exc:  # the stock path below creates it, or says what is wrong
        warn_once("mlflow-create", f"MLflow's schema creation changed ({exc!r}); using its default")
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _ray_tested() -> bool:
    try:
        installed = _release(importlib.metadata.version("ray"))
    except importlib.metadata.PackageNotFoundError:
        return False
    return _release(RAY_TESTED[0]) <= installed < _release(RAY_TESTED[1])


@contextlib.contextmanager
def quick_local_ray(log_to_driver: bool) -> Iterator[None]:
    """Around ``ray.init`` of a private local node: see the module's docstring."""
    try:
        if not _ray_tested():
            raise ImportError
        from ray._private import node, services, utils

        patches = [
            (services, "start_api_server", functools.partial(_no_api_server, services.start_api_server)),
            (services, "get_node", functools.partial(_get_node_soon, services.get_node)),
            (utils, "get_dashboard_dependency_error", _dashboard_dependency_error),
            (node.Node, "start_monitor", _not_started),
        ]  # fmt: skip
        if not log_to_driver:
            patches.append((node.Node, "start_log_monitor", _not_started))
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    except (ImportError, AttributeError):
        yield
        return
    for owner, name, value in patches:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _not_started(self: Any) -> None:
    return None


def _dashboard_dependency_error() -> ImportError | None:
    # What ray.dashboard.optional_deps imports (ray[default]), looked up rather than imported.
    import importlib.util

    names = (
        "aiohttp", "aiohttp_cors", "grpc", "opencensus", "opentelemetry.exporter.prometheus",
        "prometheus_client",
    )  # fmt: skip
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    return ImportError(f"not installed: {', '.join(missing)}") if missing else None


def _no_api_server(start: Any, include_dashboard: bool | None, *args: Any, **kwargs: Any) -> Any:
    if include_dashboard is False:
        return "", None  # Ray's own value for "no dashboard URL", and no process to track
    return start(include_dashboard, *args, **kwargs)


def _get_node_soon(get_node: Any, gcs_address: str, node_id: str) -> Any:
    try:
        from ray._raylet import GcsClient  # type: ignore[attr-defined]
        from ray.core.generated.gcs_pb2 import GcsNodeInfo  # type: ignore[attr-defined]

        client = GcsClient(address=gcs_address)
        alive = GcsNodeInfo.GcsNodeState.ALIVE
        deadline = time.monotonic() + 30  # Ray's raylet_start_wait_time_s
        while time.monotonic() < deadline:
            nodes = client.get_all_node_info(timeout=5, state_filter=alive)
            if any(nid.hex() == node_id for nid in nodes):
                break
            time.sleep(0.02)
    except Exception:  # Ray's own wait, next, says what is wrong, if anything
        pass
    return get_node(gcs_address, node_id)
