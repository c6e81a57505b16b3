"""Every use of another library's private internals, each gated (Ray's in ``_private_ray``).

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
  models alone do not even compile to valid SQLite DDL). That costs ~0.8 CPU-s, so the first
  empty store an MLflow release makes is kept in the cache folder and later ones are copies of
  it (checked with SQLite's ``quick_check``; a damaged one is made anew).
  ``tests/tracking/test_store_create.py`` opens such stores with a stock ``MlflowClient`` and
  ``mlflow server``.
- Ray: the start of a private local node, in :mod:`ml_experiment._private_ray`.
- Optuna: a live ``optuna.Trial`` for a trial created elsewhere (a worker reporting intermediate
  values to the pruner). ``optuna.Trial`` is exported; its docs discourage, but do not forbid,
  calling its constructor, and no other way exists, so it has no fallback.

The MLflow paths run only on the versions in :data:`TESTED` (the range ``pyproject.toml``
allows, which the suite runs on; ``tests/test_private.py`` checks both agree); elsewhere, or on a
``TypeError``/``AttributeError``/SQL error from the private path, the caller warns once
(:func:`warn_once`) and takes the public path.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import os
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Library -> (lowest tested, first untested) release, as "major.minor".
TESTED: dict[str, tuple[str, str]] = {"mlflow": ("3.17", "3.18"), "optuna": ("5.0", "5.1")}

_warned: set[str] = set()


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def installed_in(library: str, low: str, high: str) -> tuple[bool, str | None]:
    """Whether ``library`` is installed at a release from ``low`` up to (not with) ``high``,
    and its version (``None`` if it is not installed)."""
    try:
        version = importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return False, None
    return _release(low) <= _release(version) < _release(high), version


@functools.cache
def supported(library: str) -> bool:
    """Whether the installed ``library`` is in the range its private path was tested on."""
    low, high = TESTED[library]
    ok, version = installed_in(library, low, high)
    if not ok and version is not None:
        warn_once(
            library,
            f"{library} {version} is outside the tested range "
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

    The first one made by an MLflow release is kept (``store_template``); later ones are copies.
    Returns ``False`` where this is not possible here (untested MLflow, changed internals): the
    caller lets ``MlflowClient`` create it as usual. The caller holds the store's lock.
    """
    if not supported("mlflow"):
        return False
    tmp = db.with_name(f".{db.name}.new-{uuid.uuid4().hex[:8]}")
    template = store_template()
    try:
        if not _copy_store(template, tmp):
            _make_store(tmp)
            _copy_store(tmp, template, check=False)  # best effort: kept for the next one
        os.replace(tmp, db)
        return True
    except Exception as exc:  # the stock path below creates it, or says what is wrong
        warn_once("mlflow-create", f"MLflow's schema creation changed ({exc!r}); using its default")
        return False
    finally:
        tmp.unlink(missing_ok=True)


def store_template() -> Path:
    """Where the empty store of this MLflow release is kept between commands."""
    from ml_experiment._tmp import cache_dir

    return cache_dir() / "mlflow-store" / f"mlflow-{importlib.metadata.version('mlflow')}.db"


def _copy_store(source: Path, dest: Path, check: bool = True) -> bool:
    """``source`` copied whole to ``dest`` (through a temporary name); ``False`` if it cannot be
    (none kept yet, a read-only cache) or, with ``check``, the copy is not a sound store."""
    import shutil
    import sqlite3

    part = dest.with_name(f".{dest.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(source, part)
        if check:
            con = sqlite3.connect(part)
            try:
                sound = con.execute("PRAGMA quick_check").fetchall() == [("ok",)]
                sound = sound and len(con.execute("SELECT * FROM alembic_version").fetchall()) == 1
            finally:
                con.close()
            if not sound:
                source.unlink(missing_ok=True)  # a damaged copy kept: made anew this time
                return False
        os.replace(part, dest)
        return True
    except (OSError, sqlite3.Error):
        return False
    finally:
        part.unlink(missing_ok=True)


def _make_store(path: Path) -> None:
    import sqlite3

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
            target = sqlite3.connect(path)
            try:
                raw.driver_connection.backup(target)  # type: ignore[union-attr]
            finally:
                target.close()
        finally:
            raw.close()
    finally:
        engine.dispose()
