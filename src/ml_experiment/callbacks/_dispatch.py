"""Calls callbacks safely: one that raises is logged with its traceback and disabled."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from typing import Any

from ml_experiment.exceptions import ConfigError
from ml_experiment.tracking.redact import scrub

log = logging.getLogger("ml_experiment.callbacks")


class CallbackDispatcher:
    """Fan a hook out to every enabled callback; never lets a callback fail the job.

    What a failure leaves behind (the log record, :attr:`failures`) has the callbacks'
    :meth:`secrets` replaced: an error message often quotes the URL or token that failed.
    """

    def __init__(self, callbacks: Iterable[Any]) -> None:
        self.callbacks = list(callbacks)
        self.failed: dict[int, str] = {}  # index -> "Name.hook: error"

    @classmethod
    def for_job(cls, config: Any, job_fn: Any) -> CallbackDispatcher:
        """The ``@job`` callbacks, then one ``AppriseNotifier`` per URL of the job's ``notify:``.

        ``${NAME}`` in a URL is read from the environment now, at run time.

        Raises:
            ConfigError: a URL Apprise cannot use, or a variable it names is not set (the
                message names the field ``notify[i]``, never the URL).
        """
        callbacks = list(job_fn.options.callbacks)
        urls = getattr(config, "notify", None) or []
        if urls:
            from ml_experiment.callbacks.notifiers import AppriseNotifier

            for i, url in enumerate(urls):
                try:
                    callbacks.append(AppriseNotifier(url))
                except ValueError as exc:
                    reason = str(exc).replace("AppriseNotifier: URL 1: ", "")
                    source = getattr(config, "source", None)
                    raise ConfigError(reason, source=source, field=f"notify[{i}]") from None
        return cls(callbacks)

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
                secrets = self.secrets()
                self.failed[i] = scrub(f"{name}.{hook}: {type(exc).__name__}: {exc}", secrets)
                log.error(
                    "callback %s raised in %s and is disabled for the rest of the job\n%s",
                    name,
                    hook,
                    scrub("".join(traceback.format_exception(exc)).rstrip(), secrets),
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
