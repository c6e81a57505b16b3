"""Persistent Optuna storage, chosen by URL: a journal file (default), a database, a gRPC proxy.

- a path: Optuna's journal file beside the knowledge center (multi-process safe on one disk);
- ``postgresql://...`` (or ``mysql://``, ``sqlite:///``): Optuna's RDB storage, a small pool per
  process with ``pool_pre_ping`` so a restarted database is reconnected;
- ``grpc://host:port``: Optuna's gRPC storage proxy, so that many workers share the proxy's few
  database connections instead of opening their own.

Workers open the same URL: nothing on the driver's disk is needed for pruning reports.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

STORAGE_ENV = "ML_EXPERIMENT_STUDY_STORAGE"
_RDB_SCHEMES = ("postgresql", "mysql", "sqlite")
# Per process: one connection in use, two more under load; stale ones are tested before use.
_ENGINE = {"pool_pre_ping": True, "pool_size": 1, "max_overflow": 2, "pool_recycle": 300}

_log = logging.getLogger(__name__)
# Every record Optuna writes is one JSON object on one line that starts with this key.
RECORD_START = b'{"op_code":'


def _valid(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def repair_journal(path: str | Path) -> int:
    """Drop torn records from the journal at ``path``; return how many were dropped.

    A record is torn when a power cut (appends are not synced) or a full disk cut its line short.
    Optuna skips a torn *last* line but fails on it once anything follows, and an append lands
    right after it. Here a torn last line is cut off, and a line holding a torn record followed
    by a complete one (what that append made) keeps the complete one. The original file is kept
    beside the journal as ``<name>.torn-<time>``. Callers hold the journal's lock.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb") as f:
        data = f.read()
    # Fast path (a byte count, no JSON parsing): one record per line, the last one ended.
    if data.endswith(b"\n") and data.count(RECORD_START) == data.count(b"\n"):
        return 0
    kept: list[bytes] = []
    dropped = 0
    for line in data.splitlines(keepends=True):
        body = line.rstrip(b"\r\n")
        # Two record starts on one line: a torn record with the next one glued to it.
        if body and body.count(RECORD_START) <= 1 and _valid(body):
            kept.append(body + b"\n")
            continue
        dropped += 1
        start = body.rfind(RECORD_START)
        if start > 0 and line.endswith(b"\n") and _valid(body[start:]):
            kept.append(body[start:] + b"\n")  # the complete record appended after a torn one
    if kept and b"".join(kept) == data:
        return 0
    copy = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d%H%M%S')}")
    shutil.copy2(path, copy)
    tmp = path.with_name(f".{path.name}.repair")
    with open(tmp, "wb") as f:
        f.write(b"".join(kept))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _log.warning(
        "study journal %s: dropped %d torn record(s) left by an interrupted write (the last "
        "trials' records; the studies are intact); the original file is kept at %s",
        path,
        dropped,
        copy,
    )
    return dropped


def _ends_torn(path: str) -> bool:
    """Whether the file's last byte is not a newline (one read of one byte)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except FileNotFoundError:
        return False


def _backend_class() -> type:
    from optuna.storages.journal import JournalFileBackend

    class ProcessSafeJournalBackend(JournalFileBackend):
        """Optuna's journal file, appended under its lock but without an fsync per record.

        Each record still reaches the operating system before the lock is released, so a killed
        driver loses nothing (``--resume`` relies on that); only a power cut can lose the last
        records, as with MLflow's SQLite store in WAL mode. Three fsyncs per trial cost ~12 ms.
        Torn records are repaired on open and before an append (``repair_journal``); the
        override points are the public ``__init__`` and ``append_logs`` of Optuna's class.
        """

        def __init__(self, file_path: str, lock_obj: Any) -> None:
            self._path = file_path
            self._append_lock = lock_obj
            if os.path.exists(file_path):
                self._append_lock.acquire()
                try:
                    repair_journal(file_path)  # before Optuna reads anything
                finally:
                    self._append_lock.release()
            super().__init__(file_path, lock_obj=lock_obj)

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            self._append_lock.acquire()
            try:
                if _ends_torn(self._path):  # another writer died mid-record: start afresh
                    repair_journal(self._path)
                with open(self._path, "ab") as f:
                    f.write(text.encode("utf-8"))
            finally:
                self._append_lock.release()

    return ProcessSafeJournalBackend


def study_location(configured: str | None, default: Path) -> str:
    """The group's storage: the job file's ``study_storage``, the environment's, else ``default``."""
    location = configured or os.environ.get(STORAGE_ENV) or str(default)
    storage_kind(location)  # an unknown scheme is bad input before anything is written
    return location


def storage_kind(location: str) -> str:
    """``journal``, ``rdb`` or ``grpc``: how :func:`open_storage` opens ``location``."""
    scheme = location.split("://", 1)[0].split("+", 1)[0].lower() if "://" in location else ""
    if scheme == "grpc":
        return "grpc"
    if scheme in _RDB_SCHEMES:
        return "rdb"
    if scheme:
        from ml_experiment.exceptions import ConfigError

        raise ConfigError(
            f"unsupported study storage {public_url(location)!r}: use a journal file path, "
            "postgresql://user@host:port/db, mysql://..., sqlite:///file.db or grpc://host:port",
            field="study_storage",
        )
    return "journal"


def public_url(location: str) -> str:
    """``location`` with any password masked (what is recorded and printed)."""
    if "://" not in location or "@" not in location:
        return location
    from sqlalchemy.engine import make_url

    try:
        return make_url(location).render_as_string(hide_password=True)
    except Exception:
        return location.split("://", 1)[0] + "://***@" + location.rsplit("@", 1)[1]


def _rdb_url(location: str) -> str:
    # psycopg (3) is the driver installed with the `postgres` extra; SQLAlchemy's default for a
    # bare postgresql:// is psycopg2.
    if location.startswith("postgresql://"):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None:
            return "postgresql+psycopg://" + location.removeprefix("postgresql://")
    return location


@functools.cache
def open_storage(location: str) -> BaseStorage:
    """Open (creating if needed) the study storage at ``location``; one object per process."""
    kind = storage_kind(location)
    if kind == "grpc":
        from ml_experiment._grpc import fork_handlers_off

        fork_handlers_off()
        from optuna.storages import GrpcStorageProxy

        host, _, port = location.removeprefix("grpc://").rstrip("/").rpartition(":")
        return GrpcStorageProxy(host=host or "127.0.0.1", port=int(port))
    if kind == "rdb":
        from optuna.storages import RDBStorage

        try:
            return RDBStorage(_rdb_url(location), engine_kwargs=dict(_ENGINE))
        except ImportError as exc:
            from ml_experiment.exceptions import MissingDependencyError

            scheme = location.split(":", 1)[0]
            raise MissingDependencyError(
                f"a {scheme} study storage", exc.name or "psycopg", "postgres"
            ) from exc
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileSymlinkLock

    path = location
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # A short grace period: a lock is held for one append, so a stale one means a killed driver.
    lock = JournalFileSymlinkLock(path, grace_period=5)
    return JournalStorage(_backend_class()(path, lock))
