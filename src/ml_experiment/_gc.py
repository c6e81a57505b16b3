"""Python's cyclic garbage collector held off while a group or an experiment starts, and while a
report is made.

A full collection walks every object the collector tracks. Importing MLflow, SQLAlchemy, Optuna
and Ray makes ~300k of them and triggers enough collections on the way to cost about a third of
the imports' time (1.65 s against 1.17 s for the same imports, measured on 2 cores); building a
group's report on top of them spends 0.25-0.5 s in collections. These parts make little garbage:
the modules they load live as long as the process.

While held, the only user code a group runs, its DataLoader, runs with the collector on
(:meth:`Hold.user_code`). When the start is over, everything alive is frozen (``gc.freeze``:
left out of later collections, as those modules would survive every one of them), after a full
collection if user code ran, so that none of its garbage is frozen with them. The group's end
unfreezes it (:meth:`Hold.close`): what runs after the group, and the interpreter's exit, see
every object again. An experiment holds it only while MLflow loads and the store opens, before
any user code, and unfreezes when its run ends.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterable, Iterator


class Hold:
    """The collector off until each named part is ``done`` (or ``release``), then frozen and on.

    A collector already off, or objects already frozen (the caller's choices), are left as they
    are.
    """

    def __init__(self, parts: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._waiting = set(parts)
        self._held = gc.isenabled()
        self._user_code = False
        self._freeze = self._held and gc.get_freeze_count() == 0
        if self._held:
            gc.disable()

    @contextlib.contextmanager
    def user_code(self) -> Iterator[None]:
        """Run user code with the collector on, as it would run without ml-experiment."""
        with self._lock:
            on = self._held
            self._user_code = self._user_code or on
            if on:
                gc.enable()
        try:
            yield
        finally:
            with self._lock:
                if on and self._held:
                    gc.disable()

    def done(self, part: str) -> None:
        with self._lock:
            self._waiting.discard(part)
            if self._waiting:
                return
        self.release()

    def release(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
            if self._freeze:
                if self._user_code:
                    gc.collect()
                gc.freeze()
            gc.enable()

    def close(self) -> None:
        """The collector on as it was, and what the release froze unfrozen."""
        with self._lock:
            if self._held:  # ended before its parts were done: nothing was frozen
                self._held = False
                gc.enable()
            elif self._freeze:
                gc.unfreeze()
            self._freeze = False


@contextlib.contextmanager
def held() -> Iterator[None]:
    """The collector off for the block (no user code in it), then on again as it was."""
    on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if on:
            gc.enable()
