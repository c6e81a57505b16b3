"""An ordered background writer: the group driver's MLflow writes overlap with sampling and dispatch."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = object()


class BackgroundWriter:
    """Runs submitted writes one at a time, in order, on its own thread.

    The first error a write raises stops the writer and is raised again in the driver's thread
    at its next ``submit``/``check``/``close``, so no failure is silently lost.
    """

    def __init__(self, name: str = "ml-experiment-writer") -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            fn, args = item
            if self._error is None:
                try:
                    fn(*args)
                except BaseException as exc:
                    self._error = exc

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.check()
        self._queue.put((fn, args))

    def close(self) -> None:
        """Wait for every submitted write, then raise the first error if there was one."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self.check()
