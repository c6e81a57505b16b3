"""Opening a SQLite knowledge center: repair of interrupted migrations, read-only stores."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import write

from ml_experiment.exceptions import ConfigError
from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

# Kills the process (as SIGKILL or a power cut would) in the middle of MLflow's first schema
# creation: before or after the Nth statement that starts with PREFIX (and contains WORD).
CRASH = """
import os, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
when, prefix, word, n, db = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
seen = [0]
@event.listens_for(Engine, when + "_cursor_execute")
def crash(conn, cursor, statement, *a):
    if statement.lstrip().startswith(prefix) and word in statement:
        seen[0] += 1
        if seen[0] == n:
            os._exit(9)
from mlflow.tracking import MlflowClient
MlflowClient("sqlite:///" + db)
"""


def _crash_during_creation(db: Path, when: str, prefix: str, word: str, n: int) -> None:
    res = subprocess.run(
        [sys.executable, "-c", CRASH, when, prefix, word, str(n), str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 9, res.stderr[-2000:]


def _tables(db: Path) -> set[str]:
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()


def _plain_mlflow_fails(db: Path) -> str:
    """What MLflow alone says about ``db`` (run in a child: MLflow caches stores per URI)."""
    code = "import sys; from mlflow.tracking import MlflowClient; MlflowClient(sys.argv[1])"
    res = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{db}"], capture_output=True, text=True
    )
    assert res.returncode != 0, "the damaged store opened without repair: the test proves nothing"
    return res.stderr


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store made once (MLflow's migrations take seconds), copied by the tests that need one."""
    db = tmp_path_factory.mktemp("template") / "mlruns.db"
    MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{db}")).experiment_id("a", "experiment")
    return db


def _copy_store(template: Path, db: Path) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(template), sqlite3.connect(db)
    try:
        src.backup(dst)  # includes what is still in the -wal file
    finally:
        src.close()
        dst.close()


@pytest.mark.slow
def test_half_migrated_store_is_repaired(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "mlruns.db"
    _crash_during_creation(db, "after", "CREATE TABLE _alembic_tmp_", "", 3)
    leftovers = {t for t in _tables(db) if t.startswith("_alembic_tmp_")}
    assert leftovers, _tables(db)
    broken = tmp_path / "broken.db"
    shutil.copy(db, broken)
    assert "already exists" in _plain_mlflow_fails(broken)

    tracker = MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{db}"))
    exp_id = tracker.experiment_id("after-repair", "experiment")
    run_id = tracker.create_run("after-repair", run_name="r")
    tracker.end_run(run_id)
    assert exp_id
    assert not {t for t in _tables(db) if t.startswith("_alembic_tmp_")}
    assert any("interrupted schema upgrade" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_interrupted_first_creation_is_moved_aside(tmp_path: Path) -> None:
    db = tmp_path / "mlruns.db"
    # The first RENAME of a copied table: no schema version is stamped yet.
    _crash_during_creation(db, "before", "ALTER TABLE _alembic_tmp_", "RENAME", 1)
    _plain_mlflow_fails(db)
    tracker = MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{db}"))
    tracker.end_run(tracker.create_run("fresh", run_name="r"))
    assert [p.name for p in tmp_path.glob("mlruns.db.unfinished-*")]


def test_table_left_only_as_a_copy_is_reported_untouched(tmp_path: Path, template_db: Path) -> None:
    db = tmp_path / "mlruns.db"
    _copy_store(template_db, db)
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE tags RENAME TO _alembic_tmp_tags")  # dropped X, copy not renamed
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match=r"half-migrated.*_alembic_tmp_tags"):
        MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{db}"))
    tables = _tables(db)
    assert "_alembic_tmp_tags" in tables and "tags" not in tables  # left as it was


def test_tables_of_a_store_are_created_under_a_lock_beside_it(tmp_path: Path) -> None:
    db = tmp_path / "kc" / "mlruns.db"
    MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{db}"))
    assert (tmp_path / "kc" / "mlruns.db.lock").exists()


def _read_only(folder: Path) -> list[str]:
    """Make ``folder`` read-only for the command; return the prefix that command needs.

    Not root: chmod 555 (and 444 on the files) is real. Root ignores permission bits, so there
    ``folder`` is bind-mounted read-only in a private mount namespace, which binds root too (the
    kernel answers EROFS).
    """
    if os.geteuid() != 0:
        for path in folder.iterdir():
            path.chmod(0o444)
        folder.chmod(0o555)
        return []
    if shutil.which("unshare") is None:
        pytest.skip("root, and no unshare to make a read-only mount")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind '{folder}' '{folder}'"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"root, and no private read-only mount here: {probe.stderr.strip()}")
    script = f"mount --bind '{folder}' '{folder}' && mount -o remount,ro,bind '{folder}' && exec "
    return ["unshare", "-m", "sh", "-c", script + '"$@"', "sh"]


@pytest.mark.parametrize("with_store", [False, True], ids=["empty-folder", "existing-store"])
def test_read_only_knowledge_center_exits_2_at_once(
    tmp_path: Path, with_store: bool, template_db: Path
) -> None:
    kc = tmp_path / "kc"
    kc.mkdir()
    write(kc / "s.py", "from ml_experiment import job\n@job\ndef main():\n    return {'a': 1.0}\n")
    write(kc / "a.yaml", "name: a\nkind: experiment\nrun:\n  - s.py\n")
    if with_store:
        _copy_store(template_db, kc / "mlruns.db")
    cli = [str(Path(sys.executable).parent / "ml-experiment"), "run", "a.yaml"]
    started = time.monotonic()
    res = subprocess.run(
        [*_read_only(kc), *cli], cwd=kc, capture_output=True, text=True, timeout=120
    )
    took = time.monotonic() - started
    assert res.returncode == 2, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(kc) in lines[0] and "read-only" in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert took < 10, took  # MLflow alone retried for 105 s; measured here: ~0.7 s


@pytest.mark.slow
def test_another_database_is_never_moved_aside(tmp_path: Path) -> None:
    db = tmp_path / "mine.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE notes (x TEXT)")
    con.execute("INSERT INTO notes VALUES ('keep me')")
    con.commit()
    con.close()
    MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{db}")).experiment_id("x")
    assert not list(tmp_path.glob("mine.db.unfinished-*"))
    con = sqlite3.connect(db)
    assert con.execute("SELECT x FROM notes").fetchall() == [("keep me",)]
    con.close()


RACE = """
import sys, time
from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker
tracker = MLflowTracker(KnowledgeCenter.resolve(sys.argv[1]))
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all start the race together
for i in range(int(sys.argv[3])):
    print(tracker.experiment_id(f"same-{i}", "experiment"), flush=True)
"""


@pytest.mark.slow
def test_one_new_name_created_by_many_processes_at_once(tmp_path: Path, template_db: Path) -> None:
    # Without get-or-create with retry, one of two starts failed "already exists" 1 time in 5.
    db = tmp_path / "mlruns.db"
    _copy_store(template_db, db)
    go = time.time() + 15
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, f"sqlite:///{db}", str(go), "20"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    ids = [out.split() for out, _ in outs]
    assert all(len(i) == 20 for i in ids) and len({tuple(i) for i in ids}) == 1, ids


@pytest.mark.parametrize(
    ("state", "later"),
    [
        ("none", True),  # no store yet
        ("group", True),
        ("empty", True),  # a store without that name
        ("experiment", False),
        ("deleted", False),
        ("untagged", False),  # made before experiments were tagged: its runs say what it is
        ("garbage", False),  # not a database SQLite can read
    ],
)
def test_can_open_later_only_where_mlflow_would_accept_the_name(
    tmp_path: Path, state: str, later: bool
) -> None:
    from ml_experiment.tracking._store import can_open_later

    kc = KnowledgeCenter.resolve(None, cwd=tmp_path)
    db = tmp_path / "mlruns.db"
    if state == "garbage":
        db.write_bytes(b"not a database " * 100)
    elif state != "none":
        tracker = MLflowTracker(kc)
        if state in ("group", "experiment", "deleted"):
            exp_id = tracker.experiment_id("g", "experiment" if state == "experiment" else "group")
            if state == "deleted":
                tracker.client.delete_experiment(exp_id)
        elif state == "untagged":
            tracker.client.create_experiment("g")
    assert can_open_later(kc, "g", "group") is later
    assert not can_open_later(
        KnowledgeCenter.resolve("postgresql://u@127.0.0.1:1/x", cwd=tmp_path), "g", "group"
    )
