"""Calls callbacks safely: one that raises is logged with its traceback and disabled."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("ml_experiment.callbacks")


class CallbackDispatcher:
    """Fan a hook out to every enabled callback; never lets a callback fail the job."""

    def __init__(self, callbacks: Iterable[Any]) -> None:
        self.callbacks = list(callbacks)
        self.failed: dict[int, str] = {}  # index -> "Name.hook: error"

    def __call__(self, hook: str, **kwargs: Any) -> None:
        for i, cb in enumerate(self.callbacks):
            if i in self.failed:
                continue
            method = getattr(cb, hook, None)
            if method is None:
                continue
            try:
                method(**kwargs)
            except Exception as exc:
                name = type(cb).__name__
                self.failed[i] = f"{name}.{hook}: {type(exc).__name__}: {exc}"
                log.error(
                    "callback %s raised in %s and is disabled for the rest of the job",
                    name,
                    hook,
                    exc_info=True,
                )

    @property
    def failures(self) -> list[str]:
        return list(self.failed.values())

    def secrets(self) -> list[str]:
        """Secret strings that notifiers hold, to scrub from anything recorded."""
        found: list[str] = []
        for cb in self.callbacks:
            getter = getattr(cb, "secrets", None)
            if callable(getter):
                try:
                    found.extend(s for s in getter() if isinstance(s, str) and s)
                except Exception:
                    log.debug("secrets() of %s raised", type(cb).__name__, exc_info=True)
        return found
