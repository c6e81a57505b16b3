"""A new SQLite knowledge center made at MLflow's schema in memory, then moved into place.

What MLflow itself would make on that file (its initial tables and every migration), checked
table by table; a stock ``MlflowClient`` and a real ``mlflow server`` open it without refusing or
migrating it; where the private path does not fit, MLflow creates the store as usual.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tests.services import free_port

from ml_experiment import _private
from ml_experiment.exceptions import TrackingError
from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker


def _parts(sql: str | None) -> tuple[str, ...]:
    """A CREATE statement as its head and its sorted top-level clauses.

    MLflow's own migrations do not write a table's constraints in a fixed order (two stock
    creations differ), so the clauses are compared as a set.
    """
    text = " ".join((sql or "").split())
    head, paren, body = text.partition("(")
    if not paren:
        return (text,)
    clauses, depth, current = [], 0, ""
    for ch in body.rsplit(")", 1)[0]:
        if ch == "," and depth == 0:
            clauses.append(current.strip())
            current = ""
            continue
        depth += (ch == "(") - (ch == ")")
        current += ch
    clauses.append(current.strip())
    return (head.strip(), *sorted(clauses))


def _schema(db: Path) -> tuple[list[tuple[object, ...]], list[tuple[str, ...]]]:
    con = sqlite3.connect(db)
    try:
        objects = sorted(
            (t, n, _parts(sql))
            for t, n, sql in con.execute("SELECT type, name, sql FROM sqlite_master")
        )
        version = con.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        con.close()
    return objects, version


def _stock(db: Path) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()


pytestmark = pytest.mark.usefixtures("fresh_private_gates")


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No empty store kept by an earlier test: each one here starts by making it."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ML_EXPERIMENT_CACHE_DIR", str(cache))
    return cache


def test_the_new_store_has_exactly_the_schema_mlflow_makes(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    assert _private.create_sqlite_store(ours)
    _stock(theirs)
    schema, version = _schema(ours)
    stock_schema, stock_version = _schema(theirs)
    assert version == stock_version and len(version) == 1
    assert schema == stock_schema
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ours.db.new-")]


def test_later_stores_are_copies_of_the_first_a_damaged_copy_is_made_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.store.db import utils

    stock = tmp_path / "stock.db"
    _stock(stock)
    assert _private.create_sqlite_store(tmp_path / "first.db")
    template = _private.store_template()
    assert template.is_file() and template.parent.parent == tmp_path / "cache"

    def not_called(engine: object) -> None:
        raise AssertionError("the schema was made again")

    made = utils._initialize_tables
    monkeypatch.setattr(utils, "_initialize_tables", not_called)
    assert _private.create_sqlite_store(tmp_path / "copy.db")  # no warning: none expected
    assert _schema(tmp_path / "copy.db") == _schema(stock)
    _stock(tmp_path / "copy.db")  # a stock client opens it without migrating
    assert _schema(tmp_path / "copy.db") == _schema(stock)

    template.write_bytes(b"not a database" * 100)
    monkeypatch.setattr(utils, "_initialize_tables", made)
    assert _private.create_sqlite_store(tmp_path / "after-damage.db")
    assert _schema(tmp_path / "after-damage.db") == _schema(stock)
    assert _schema(template) == _schema(stock)  # kept again, sound
    assert not [p for p in template.parent.iterdir() if p != template]  # no partial files


def test_the_tracker_makes_a_store_a_stock_client_uses_unchanged(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlruns.db"
    tracker = MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{db}"))
    run_id = tracker.create_run("made-here")
    before = _schema(db)

    stock = MlflowClient(tracking_uri=f"sqlite:///{db}")
    assert [e.name for e in stock.search_experiments()] == ["made-here", "Default"]
    stock.log_metric(run_id, "m", 1.5)
    assert stock.get_run(run_id).data.metrics == {"m": 1.5}
    assert _schema(db) == before  # nothing was migrated


def test_where_the_private_path_does_not_fit_mlflow_creates_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.store.db import utils

    def changed(engine: object) -> None:
        raise TypeError("_initialize_tables() takes 2 arguments")

    made = utils._initialize_tables
    monkeypatch.setattr(utils, "_initialize_tables", changed)
    with pytest.warns(RuntimeWarning, match="schema creation changed"):
        assert not _private.create_sqlite_store(tmp_path / "x.db")
    assert not (tmp_path / "x.db").exists()
    assert not list(tmp_path.iterdir())  # its temporary file is gone, nothing was kept
    monkeypatch.setattr(utils, "_initialize_tables", made)

    # Through the tracker: the warning, then MLflow's own creation (which calls the same
    # function, so it fails here too, as MLflow's error).
    monkeypatch.setattr(utils, "_initialize_tables", changed)
    monkeypatch.setattr(_private, "_warned", set())
    with (
        pytest.warns(RuntimeWarning, match="schema creation changed"),
        pytest.raises(TrackingError, match="takes 2 arguments"),
    ):
        MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{tmp_path / 'y.db'}"))
    monkeypatch.setattr(utils, "_initialize_tables", made)
    tracker = MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{tmp_path / 'z.db'}"))
    assert tracker.experiment_id("e")


def test_an_untested_mlflow_gets_mlflows_own_creation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(_private.TESTED, "mlflow", ("9.0", "9.1"))
    _private.supported.cache_clear()
    with pytest.warns(RuntimeWarning, match="outside the tested range"):
        assert not _private.create_sqlite_store(tmp_path / "x.db")
    tracker = MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{tmp_path / 'y.db'}"))
    assert tracker.experiment_id("e")
    stock = tmp_path / "stock.db"
    _stock(stock)
    assert _schema(tmp_path / "y.db") == _schema(stock)


@pytest.mark.slow
def test_mlflow_server_serves_the_new_store_without_migrating_it(tmp_path: Path) -> None:
    db = tmp_path / "mlruns.db"
    tracker = MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{db}"))
    run_id = tracker.create_run("served")
    before = _schema(db)
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1", "--backend-store-uri", f"sqlite:///{db}"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.time() < deadline, "mlflow server did not become healthy"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        with urllib.request.urlopen(f"{url}/api/2.0/mlflow/runs/get?run_id={run_id}") as r:
            assert r.status == 200
            assert run_id.encode() in r.read()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text(errors="replace")
    assert "out-of-date database schema" not in text, text[-3000:]
    assert _schema(db) == before  # the server neither refused nor migrated it
