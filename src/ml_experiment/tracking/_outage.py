"""Writes that wait out a knowledge center that went away (a restarted server or database).

MLflow's HTTP client already retries each request for about two minutes. Beyond one request, a
finished trial's record waits here, retried with backoff, until the store answers or the outage
lasts longer than the limit: then the group stops, and ``--resume`` writes what is missing from
the study (which holds every finished trial).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

from ml_experiment.exceptions import TrackingError

OUTAGE_ENV = "ML_EXPERIMENT_STORE_OUTAGE_S"
DEFAULT_OUTAGE_S = 600.0
T = TypeVar("T")

# What an unreachable store looks like through MLflow's client (HTTP) and SQLAlchemy (databases).
_UNREACHABLE = (
    "Max retries exceeded",
    "Connection refused",
    "ConnectionError",
    "Failed to establish a new connection",
    "RemoteDisconnected",
    "server closed the connection",
    "could not connect to server",
    "connection to server at",
    "Connection aborted",
    "Read timed out",
    "response code 50",  # 500-504 once MLflow's own retries are spent
    "database is locked",
    "terminating connection due to administrator command",
    "the database system is shutting down",
    "the database system is starting up",
)
# A read-only or full disk, a missing file: refusals, never waited for.


class StoreUnavailable(TrackingError):
    """The knowledge center did not answer (as opposed to refusing a write)."""


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the store could not be reached."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError | TimeoutError | StoreUnavailable):
            return True
        if any(marker in str(seen) for marker in _UNREACHABLE):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def outage_limit() -> float:
    try:
        return float(os.environ.get(OUTAGE_ENV, DEFAULT_OUTAGE_S))
    except ValueError:
        return DEFAULT_OUTAGE_S


def through_outage(
    write: Callable[[], T],
    *,
    before_retry: Callable[[], None] = lambda: None,
    where: str = "the knowledge center",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``write()``, retried with backoff while the store is unreachable, up to the limit.

    ``before_retry`` runs before each new attempt (to find what an earlier attempt wrote, so
    nothing is written twice).

    Raises:
        StoreUnavailable: the store did not answer within the limit.
    """
    started = time.monotonic()
    delay = 0.5
    while True:
        try:
            return write()
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            waited = time.monotonic() - started
            if waited >= outage_limit():
                raise StoreUnavailable(
                    f"{where} has not answered for {waited:.0f} s ({type(exc).__name__}); "
                    "finished trials are kept in the study: once it is back, run the same "
                    "command with --resume to finish writing them"
                ) from exc
        sleep(min(delay, max(0.0, outage_limit() - (time.monotonic() - started))))
        delay = min(delay * 2, 30.0)
        before_retry()
