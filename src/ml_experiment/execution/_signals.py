"""SIGINT and SIGTERM while a job runs: both stop it the same way (runs KILLED, a resume hint).

SIGTERM is what ``kill``, a scheduler or ``docker stop`` sends; Python's default would end the
process on the spot, leaving runs RUNNING and a study with a half-made trial.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ml_experiment.exceptions import Interrupted

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _install(handler: Callable[[int, Any], None]) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for signum in _SIGNALS:
        # None: a handler set outside Python; Python's own default is put back in its place.
        previous[signum] = signal.signal(signum, handler) or signal.SIG_DFL
    return previous


def _restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@contextlib.contextmanager
def interrupts_raise(message: str) -> Iterator[None]:
    """In the block, SIGINT and SIGTERM raise :class:`Interrupted` at once (exit 130 / 143)."""

    def handle(signum: int, frame: Any) -> None:
        raise Interrupted(message, signum=signum)

    previous = _install(handle)
    try:
        yield
    finally:
        _restore(previous)


class SafePointStop:
    """SIGINT/SIGTERM during a group's loop stop it at the loop's next turn.

    Python raises wherever the main thread happens to be, e.g. inside a journal append holding
    the study's file lock or inside Ray's client code, and the clean-up that follows could then
    hang or crash. The first signal only sets a flag that the loop checks between trials
    (:meth:`check`); a second one interrupts at once.
    """

    def __init__(self, message: Callable[[], str]) -> None:
        self.signum: int | None = None
        self._message = message
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise Interrupted(self._message(), signum=signum)
        self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise Interrupted(self._message(), signum=self.signum)

    def __enter__(self) -> SafePointStop:
        self._previous = _install(self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        _restore(self._previous)
        self._previous = {}
