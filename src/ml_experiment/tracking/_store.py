"""Opening a SQLite knowledge center safely: writability first, one schema writer at a time.

MLflow creates and migrates a SQLite store's tables on the first ``SqlAlchemyStore`` of a
process, without any lock between processes: two ``ml-experiment run`` started together in an
empty folder race on ``CREATE TABLE`` and can leave a half-migrated store (``_alembic_tmp_*``
tables). Here the store is opened under an inter-process file lock beside the database, after a
writability check (MLflow would otherwise retry a read-only file for minutes), and leftovers
of an interrupted migration are removed when that loses nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_experiment.exceptions import ConfigError, TrackingError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from ml_experiment.tracking._mlflow import KnowledgeCenter

_log = logging.getLogger(__name__)
LOCK_SUFFIX = ".lock"
LOCK_TIMEOUT_S = 300.0  # a first migration takes ~2 s; only a hung process holds it longer
TMP_PREFIX = "_alembic_tmp_"
TAG_KIND = "ml_experiment.kind"  # on an MLflow experiment: "experiment" or "group"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else ``None``."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri.removeprefix("sqlite:///")
    return Path(path) if path and path != ":memory:" else None


def check_writable(kc: KnowledgeCenter, db: Path) -> None:
    """Raise ``ConfigError`` naming the folder if the store cannot be written (in microseconds).

    ``os.access`` asks the kernel, so a read-only mount or an immutable file counts for root too.
    """
    folder = db.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problems = []
    if not os.access(existing, os.W_OK | os.X_OK):
        problems.append(f"cannot create files in {existing}")
    # SQLite in WAL mode writes <db>-wal and <db>-shm beside the database.
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            problems.append(f"{path.name} is not writable")
    art = kc.artifact_root
    if art is not None and art.exists() and not os.access(art, os.W_OK | os.X_OK):
        problems.append(f"the artifact folder {art.name} is not writable")
    if problems:
        raise ConfigError(
            f"the knowledge center folder {folder} is read-only ({'; '.join(problems)}): make it "
            "writable or set tracking_uri to a writable place",
            field="tracking_uri",
        )


def can_open_later(kc: KnowledgeCenter, name: str, kind: str) -> bool:
    """Whether a run may start before this store is opened (MLflow's import and store take
    seconds): a writable SQLite store where ``name`` is free or already ``kind``'s, read
    without MLflow. Anything else (another store, a deleted name, one of the other kind, a
    file SQLite cannot read): ``False``, so the store is opened first and says what is wrong.
    """
    db = sqlite_path(kc.tracking_uri)
    if db is None:
        return False
    check_writable(kc, db)
    if not db.exists():
        return True
    query = (
        "SELECT e.lifecycle_stage, t.value FROM experiments e LEFT JOIN experiment_tags t"
        " ON t.experiment_id = e.experiment_id AND t.key = ? WHERE e.name = ?"
    )
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=1.0)) as con:
            rows = con.execute(query, (TAG_KIND, name)).fetchall()
    except sqlite3.Error:
        return False
    return rows in ([], [("active", kind)])


def _repair(db: Path) -> None:
    """Undo what an interrupted schema creation or upgrade left, where that loses nothing.

    Called under the store lock, so no migration of ours is running. Two cases, both made by
    killing a process during MLflow's migrations (tests/tracking/test_store.py):

    - MLflow's first tables but no schema version and no experiment: the first creation never
      finished; the file is moved aside and created afresh.
    - ``_alembic_tmp_X`` beside ``X``: Alembic's SQLite batch migration copies ``X`` into it, drops
      ``X`` and renames the copy; while ``X`` exists the copy holds nothing ``X`` lacks, so it is
      dropped and MLflow finishes the upgrade. A copy whose ``X`` is gone is the only copy of that
      table: reported, never touched.
    """
    if not db.exists() or db.stat().st_size == 0:
        return
    con = sqlite3.connect(db, timeout=30)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = (
            con.execute("SELECT version_num FROM alembic_version").fetchall()
            if "alembic_version" in tables
            else []
        )
        # Only a store without a schema version is counted (a count scans the table).
        unfinished = (
            {"experiments", "runs"} <= tables  # an MLflow store, not some other database
            and not version
            and not any(
                con.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
                for t in ("experiments", "runs")
                if t in tables
            )
        )
        leftovers = sorted(t for t in tables if t.startswith(TMP_PREFIX))
        orphans = [t for t in leftovers if t.removeprefix(TMP_PREFIX) not in tables]
        if orphans and not unfinished:
            raise ConfigError(
                f"the knowledge center {db} is half-migrated: table {orphans[0]} holds the only "
                "copy of its data after an interrupted schema upgrade, which cannot be repaired "
                "automatically; restore a backup of the file or move it aside to start a new one",
                field="tracking_uri",
            )
        for table in leftovers:
            _log.warning(
                "knowledge center %s: dropping %s, left by an interrupted schema upgrade", db, table
            )
            con.execute(f'DROP TABLE "{table}"')
        con.commit()
    finally:
        con.close()  # the last connection: SQLite folds the -wal file back into the database
    if unfinished:
        aside = db.with_name(f"{db.name}.unfinished-{time.strftime('%Y%m%d%H%M%S')}")
        _log.warning(
            "knowledge center %s: its creation was interrupted before any run; moved to %s "
            "and created afresh",
            db,
            aside,
        )
        os.replace(db, aside)
        for extra in (Path(f"{db}-wal"), Path(f"{db}-shm")):
            extra.unlink(missing_ok=True)


def _classify(kc: KnowledgeCenter, exc: Exception) -> Exception:
    text = str(exc)
    if (
        "out-of-date database schema" in text
        or "already exists" in text
        or "duplicate column" in (text)
    ):
        return ConfigError(
            f"the knowledge center {kc.tracking_uri} has an unfinished or older schema "
            f"({text.splitlines()[0][:160]}): back the file up, then run: mlflow db upgrade "
            f"{kc.tracking_uri}",
            field="tracking_uri",
        )
    return TrackingError(f"cannot open the knowledge center {kc.tracking_uri}: {exc}")


def open_client(kc: KnowledgeCenter) -> MlflowClient:
    """An ``MlflowClient`` whose store is fully initialised (tables created and migrated).

    For SQLite: writability is checked first, then the store is opened while holding
    ``<db>.lock`` so that only one process creates or migrates tables at a time.
    """
    db = sqlite_path(kc.tracking_uri)
    if db is not None:
        check_writable(kc, db)  # before importing MLflow: a read-only store fails in ~1 s
    from mlflow.tracking import MlflowClient

    if db is None:
        try:
            return MlflowClient(tracking_uri=kc.tracking_uri)
        except Exception as exc:  # MLflow raises many types for a bad store
            raise TrackingError(
                f"cannot open the knowledge center {kc.tracking_uri}: {exc}"
            ) from exc

    from filelock import FileLock, Timeout

    db.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{db}{LOCK_SUFFIX}", timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            _repair(db)
            if not db.exists() or db.stat().st_size == 0:
                from ml_experiment import _private

                # MLflow's own schema, made in memory and moved into place whole.
                _private.create_sqlite_store(db)
            # The client builds its store here: tables are created and migrated under the lock
            # (unless made above), the default experiment added.
            client = MlflowClient(tracking_uri=kc.tracking_uri)
    except Timeout as exc:
        raise TrackingError(
            f"the knowledge center {db} stayed locked for {LOCK_TIMEOUT_S:.0f} s by another "
            f"process ({lock.lock_file}): is a schema upgrade hanging?"
        ) from exc
    except ConfigError:
        raise
    except Exception as exc:
        raise _classify(kc, exc) from exc
    return client


def get_or_create_experiment(
    client: MlflowClient, name: str, location: str | None, kind: str | None
) -> Any:
    """The MLflow experiment ``name``, created if missing; a name created meanwhile by another
    process (MLflow: RESOURCE_ALREADY_EXISTS) is read back instead of failing."""
    from mlflow.exceptions import MlflowException

    try:
        for attempt in range(5):
            exp = client.get_experiment_by_name(name)
            if exp is not None:
                return exp
            try:
                client.create_experiment(
                    name, artifact_location=location, tags={TAG_KIND: kind} if kind else None
                )
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS" or attempt == 4:
                    raise
    except MlflowException as exc:
        raise TrackingError(
            f"cannot use the knowledge center {client.tracking_uri}: {exc}"
        ) from exc
    raise TrackingError(
        f"experiment {name!r} vanished while being created in {client.tracking_uri}"
    )


def check_experiment(client: MlflowClient, tracking_uri: str, exp: Any, kind: str | None) -> None:
    """A deleted experiment, or one of the other kind, is bad input naming the way out."""
    if exp.lifecycle_stage != "active":
        raise ConfigError(
            f"experiment {exp.name!r} is deleted in the knowledge center {tracking_uri}: restore "
            f"it with `MLFLOW_TRACKING_URI='{tracking_uri}' mlflow experiments restore "
            f"--experiment-id {exp.experiment_id}`, or give the job another name",
            field="name",
        )
    other = exp.tags.get(TAG_KIND)
    if kind and other is None:
        # Made before experiments were tagged: its runs say what it is.
        found = client.search_runs(
            [exp.experiment_id], f"tags.`{TAG_KIND}` != '{kind}'", max_results=1
        )
        other = found[0].data.tags[TAG_KIND] if found else kind
        client.set_experiment_tag(exp.experiment_id, TAG_KIND, other)
        exp.tags[TAG_KIND] = other
    if kind and other != kind:
        raise ConfigError(
            f"the name {exp.name!r} is already taken by {other} runs in {tracking_uri}; "
            f"experiments and groups are kept apart: give this {kind} another name",
            field="name",
        )
