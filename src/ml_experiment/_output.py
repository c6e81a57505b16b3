"""How much a command shows: ``-q`` the summary only, default the job's own output, ``-v`` all.

By default the libraries' chatter (MLflow's database-migration INFO lines, Ray's banners, its
``(execute_trial pid=...)`` prefixes and de-duplication notices) stays out of the way: a trial's
output is shown once it ends, prefixed ``[trial N]``, and is always in its ``logs/console.log``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from contextvars import ContextVar

QUIET, NORMAL, VERBOSE = -1, 0, 1

_verbosity: ContextVar[int] = ContextVar("ml_experiment_verbosity", default=NORMAL)
# Logger -> level when not verbose (quiet: ERROR for all). Ray's start-up banners (token auth,
# usage stats) are warnings of its loggers; MLflow's migrations are INFO.
_LOGGERS = {"mlflow": logging.WARNING, "alembic": logging.WARNING, "ray": logging.ERROR}


def verbosity() -> int:
    return _verbosity.get()


@contextlib.contextmanager
def shown(level: int) -> Iterator[None]:
    """For the block: ``level`` of output, and the libraries' loggers to match."""
    token = _verbosity.set(level)
    loggers = {logging.getLogger(name): lvl for name, lvl in _LOGGERS.items()}
    before = {logger: logger.level for logger in loggers}
    env_before = os.environ.get("MLFLOW_LOGGING_LEVEL")
    if level < VERBOSE:
        settle()
        # MLflow sets its logger's level from this when it is imported (later, lazily).
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR" if level == QUIET else "WARNING")
    try:
        yield
    finally:
        for logger, lvl in before.items():
            logger.setLevel(lvl)
        if env_before is None:
            os.environ.pop("MLFLOW_LOGGING_LEVEL", None)
        _verbosity.reset(token)


def settle() -> None:
    """Apply the output level to the libraries' loggers; again after one configured its own.

    ``import ray`` sets up Ray's loggers anew, so the group calls this once Ray is imported.
    """
    level = verbosity()
    if level >= VERBOSE:
        return
    for name, lvl in _LOGGERS.items():
        logging.getLogger(name).setLevel(logging.ERROR if level == QUIET else lvl)


def trial_output(number: int, text: str | None) -> str:
    """A finished trial's console output as shown: each line prefixed ``[trial N]``."""
    if not text or verbosity() != NORMAL:
        return ""
    return "".join(f"[trial {number}] {line}\n" for line in text.splitlines())
