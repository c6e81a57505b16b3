"""Leaving the ``ml-experiment`` process once a group has ended, without the interpreter's teardown.

Tearing down the modules a group loads (MLflow, Ray, Optuna, SQLAlchemy, plotting) takes
1-1.5 s on 2 cores after everything is written. Once a group has ended (records written, Ray shut
down, its threads joined) nothing is left for that teardown to do, so the process leaves with
``os._exit`` after the ``atexit`` handlers ran and SQLite connections closed (so that no
``-wal``/``-shm`` file stays next to the store). Any other thread still running, or a non-integer
exit, takes the normal way out.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading

_ended = False


def group_ended() -> None:
    """Called by the group engine once its records are written and its Ray session is down."""
    global _ended
    _ended = True


def leave(code: object) -> None:
    """End the process with ``code``: at once after a group, else by ``SystemExit``."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if not _ended or others or not (code is None or isinstance(code, int)):
        raise SystemExit(code)
    atexit._run_exitfuncs()  # what a normal exit runs first: logging, filelock, MLflow, Ray
    sqlalchemy = sys.modules.get("sqlalchemy")
    if sqlalchemy is not None:
        gc.unfreeze()  # frozen objects are not in gc.get_objects()
        for obj in gc.get_objects():
            if isinstance(obj, sqlalchemy.engine.Engine):
                obj.dispose()  # closes pooled SQLite connections: the last one removes -wal/-shm
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code or 0)
