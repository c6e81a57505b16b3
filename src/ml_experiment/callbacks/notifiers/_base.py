"""``NotifierBase``: turn job and trial events into short text messages and send them.

A notifier never fails the run: building or sending a message that raises is logged (with the
notifier's secrets redacted) on the ``ml_experiment.notifiers`` logger and swallowed.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from ml_experiment.callbacks._base import Callback
from ml_experiment.exceptions import MLExperimentError

logger = logging.getLogger("ml_experiment.notifiers")
_MAX_ITEMS = 20
_LOCK = threading.Lock()  # guards the failure counters; one send at a time, no contention


class NotificationError(MLExperimentError):
    """A notification could not be delivered."""


def format_duration(seconds: Any) -> str | None:
    """``0.53`` -> ``'0.5s'``, ``65`` -> ``'1m 05s'``, ``3725`` -> ``'1h 02m 05s'``; None if unknown."""
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(s) or s < 0:
        return None
    if s < 59.95:
        return f"{s:.1f}s"
    days, rem = divmod(round(s), 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_value(value: Any) -> str:
    """A metric or parameter value, short: floats with 6 significant digits, lists bracketed."""
    if callable(getattr(value, "tolist", None)):  # numpy scalars and small arrays
        value = value.tolist()
    if value is None:
        return "n/a"
    if isinstance(value, numbers.Real) and not isinstance(value, bool | numbers.Integral):
        return f"{float(value):.6g}"
    if isinstance(value, Mapping):
        return format_params(value)
    if isinstance(value, list | tuple):
        more = ", ..." if len(value) > _MAX_ITEMS else ""
        return _cut("[" + ", ".join(format_value(v) for v in value[:_MAX_ITEMS]) + more + "]", 200)
    return _cut(str(value), 200)


def format_params(params: Any) -> str:
    """``{'C': 1.0, 'kernel': 'rbf'}`` -> ``"C=1, kernel='rbf'"`` (at most 20 items)."""
    if not isinstance(params, Mapping):
        return format_value(params)
    items = list(params.items())
    parts = [f"{k}={v!r}" if isinstance(v, str) else f"{k}={format_value(v)}" for k, v in items]
    if len(items) > _MAX_ITEMS:
        parts[_MAX_ITEMS:] = [f"... (+{len(items) - _MAX_ITEMS} more)"]
    return ", ".join(parts)


def format_error(error: Any) -> str | None:
    """One line: ``'ValueError: bad input'`` for an exception, the first line of a string."""
    if error is None:
        return None
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    if isinstance(error, BaseException):
        name = type(error).__name__
        return _cut(f"{name}: {lines[0]}" if lines else name, 300)
    return _cut(lines[0] if lines else "", 300)


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _label(config: Any) -> str:
    kind, name = _field(config, "kind") or "job", _field(config, "name")
    return f"{kind} {str(name)!r}" if name else str(kind)


def _trial_label(config: Any, trial: Any) -> str:
    number = _field(trial, "number")
    return f"{_label(config)}: trial {'?' if number is None else number}"


def _lines(head: str, *pairs: tuple[str, Any]) -> str:
    return "\n".join([head, *(f"{key}: {value}" for key, value in pairs if value)])


class NotifierBase(Callback):
    """A callback that sends a short text message at each job (and optionally trial) event.

    Subclasses implement :meth:`send_message`; they may override the ``*_message`` methods to
    change the text (return ``None`` to send nothing). ``on_info_logged`` sends nothing.

    Args:
        send_message_for_trials: Also send a message when each group trial starts and ends.
        max_consecutive_failures: After this many failed sends in a row the notifier stays
            silent until the next ``on_job_start``, so a dead endpoint does not cost every trial
            its time budget.
    """

    # Class-level defaults keep a subclass that forgets ``super().__init__()`` working.
    send_message_for_trials: bool = False
    max_consecutive_failures: int = 3
    _failures: int = 0

    def __init__(
        self, *, send_message_for_trials: bool = False, max_consecutive_failures: int = 3
    ) -> None:
        if max_consecutive_failures < 1:
            raise ValueError(
                f"max_consecutive_failures must be >= 1, got {max_consecutive_failures}"
            )
        self.send_message_for_trials = bool(send_message_for_trials)
        self.max_consecutive_failures = max_consecutive_failures

    @abstractmethod
    def send_message(self, msg: str) -> None:
        """Deliver ``msg`` (first line: the headline); raise when it was not delivered."""

    def secrets(self) -> list[str]:
        """The credential strings this notifier holds (tokens, webhook URLs, passwords)."""
        return []

    # -- messages -------------------------------------------------------------------------

    def job_start_message(self, config: Any, **kwargs: Any) -> str | None:
        """``"group 'svm' started"``."""
        return _lines(f"{_label(config)} started", ("run", kwargs.get("run_id")))

    def job_end_message(
        self, config: Any, exception: BaseException | None = None, **kwargs: Any
    ) -> str | None:
        """Finished (duration, best value and params or metrics, trial counts) or failed (the error).

        A group whose trials all failed is reported as failed, even though the group itself ran.
        """
        duration = format_duration(kwargs.get("duration"))
        counts = kwargs.get("counts") if isinstance(kwargs.get("counts"), Mapping) else None
        all_failed = bool(exception is None and counts is not None and counts.get("fail")) and not (
            counts or {}
        ).get("complete")
        failed = exception is not None or all_failed
        head = f"{_label(config)} {'failed' if failed else 'finished'}"
        head += f" {'after' if failed else 'in'} {duration}" if duration else ""
        error = format_error(exception)
        if all_failed and counts:
            error = f"all {counts.get('fail')} trials failed"
        best = kwargs.get("best_value")
        show_best = best is not None or (_field(config, "kind") == "group" and not failed)
        trials = None
        if counts is not None:
            trials = ", ".join(
                f"{counts.get(k, 0)} {w}"
                for k, w in (("complete", "complete"), ("pruned", "pruned"), ("fail", "failed"))
            )
        return _lines(
            head,
            ("error", error),
            ("best value", format_value(best) if show_best else None),
            ("best params", kwargs.get("best_params") and format_params(kwargs["best_params"])),
            ("trials", trials),
            ("metrics", kwargs.get("metrics") and format_params(kwargs["metrics"])),
            ("run", kwargs.get("run_id")),
        )

    def trial_start_message(
        self, config: Any, trial: Any, sampled_params: Any = None, **kwargs: Any
    ) -> str | None:
        """``"group 'svm': trial 3 started"`` and the sampled parameters."""
        params = sampled_params if sampled_params is not None else _field(trial, "params")
        return _lines(
            f"{_trial_label(config, trial)} started", ("params", params and format_params(params))
        )

    def trial_end_message(
        self, config: Any, trial: Any, metric: Any = None, exception: Any = None, **kwargs: Any
    ) -> str | None:
        """``"group 'svm': trial 3 finished in 2.1s"`` (or failed / pruned), value, params, error."""
        state = _field(trial, "state")
        state = str(getattr(state, "name", state) or "").upper()
        if "PRUNED" in state or type(exception).__name__ == "TrialPruned":
            outcome = "pruned"
        else:
            outcome = "failed" if "FAIL" in state or exception is not None else "finished"
        head = f"{_trial_label(config, trial)} {outcome}"
        duration = format_duration(kwargs.get("duration"))
        if duration:
            head += f" {'in' if outcome == 'finished' else 'after'} {duration}"
        return _lines(
            head,
            ("value", None if metric is None else format_value(metric)),
            ("params", format_params(_field(trial, "params") or {})),
            ("error", format_error(exception) if outcome == "failed" else None),
        )

    # -- hooks ----------------------------------------------------------------------------

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        with _LOCK:  # a new job gets a fresh chance after an earlier outage
            self._failures = 0
        self._notify(self.job_start_message, config, **kwargs)

    def on_job_end(
        self, config: Any, exception: BaseException | None = None, **kwargs: Any
    ) -> None:
        self._notify(self.job_end_message, config, exception=exception, **kwargs)

    def on_trial_start(
        self, config: Any, trial: Any, sampled_params: dict[str, Any], **kwargs: Any
    ) -> None:
        if self.send_message_for_trials:
            self._notify(self.trial_start_message, config, trial, sampled_params, **kwargs)

    def on_trial_end(
        self,
        config: Any,
        trial: Any,
        metric: Any,
        exception: BaseException | str | None = None,
        **kwargs: Any,
    ) -> None:
        if self.send_message_for_trials:
            self._notify(self.trial_end_message, config, trial, metric, exception, **kwargs)

    # -- plumbing -------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        try:
            secrets = [s for s in self.secrets() if s]
        except Exception:
            secrets = []
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def _notify(self, build: Callable[..., str | None], *args: Any, **kwargs: Any) -> None:
        name = type(self).__name__
        if self._failures >= self.max_consecutive_failures:
            return
        try:
            msg = build(*args, **kwargs)
        except Exception as exc:
            logger.warning(
                "%s could not build a message: %s", name, self._redact(format_error(exc) or "")
            )
            return
        if not msg:
            return
        try:
            self.send_message(msg)
        except Exception as exc:
            with _LOCK:
                self._failures += 1
                failures = self._failures
            detail = str(exc) if isinstance(exc, NotificationError) else format_error(exc)
            logger.warning("%s: notification not sent: %s", name, self._redact(detail or ""))
            if failures >= self.max_consecutive_failures:
                logger.warning(
                    "%s: silent until the next job starts (after %d failures in a row)",
                    name,
                    failures,
                )
            return
        with _LOCK:
            self._failures = 0
