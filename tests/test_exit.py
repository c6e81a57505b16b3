"""After a group, ``ml-experiment`` leaves without the interpreter's teardown, losing nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = """
import atexit, gc, sqlite3, sys, threading, time
import sqlalchemy

from ml_experiment import _exit

engine = sqlalchemy.create_engine("sqlite:///" + sys.argv[1])
with engine.begin() as conn:
    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    conn.exec_driver_sql("INSERT INTO t VALUES (7)")
atexit.register(lambda: print("atexit ran", flush=True))


class Teardown:  # says when the interpreter tears the module down
    def __del__(self):
        print("teardown", flush=True)


kept = Teardown()
if sys.argv[2] == "thread":  # a thread of the user's still working: wait for it, as Python does
    threading.Thread(target=lambda: (time.sleep(0.5), print("thread done", flush=True))).start()
if sys.argv[2] == "group":
    gc.freeze()  # the engine among frozen objects: the leave still finds it
if sys.argv[2] != "no-group":
    _exit.group_ended()
print("buffered", end="")  # not flushed yet
_exit.leave(int(sys.argv[3]))
"""


@pytest.mark.parametrize(
    ("mode", "code", "expected"),
    [
        # After a group: atexit handlers run, in order after the output, but no teardown.
        ("group", 0, ["bufferedatexit ran"]),
        ("group", 3, ["bufferedatexit ran"]),
        # A thread still working, or no group: Python's own way out.
        ("thread", 0, ["bufferedthread done", "atexit ran", "teardown"]),
        ("no-group", 5, ["bufferedatexit ran", "teardown"]),
    ],
)
def test_leave_keeps_code_output_and_store(
    tmp_path: Path, mode: str, code: int, expected: list[str]
) -> None:
    db = tmp_path / "store.db"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(db), mode, str(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == code, proc.stderr
    assert proc.stdout.splitlines() == expected
    # The connection was closed: SQLite removed its write-ahead log, and the row is there.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.db"]
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(7,)]
