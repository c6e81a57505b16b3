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

_MAX_ERROR_CHARS = 300
_MAX_VALUE_CHARS = 200
_MAX_ITEMS = 20
# Guards the failure counters of every notifier; contention is negligible (one send at a time).
_STATE_LOCK = threading.Lock()


class NotificationError(MLExperimentError):
    """A notification could not be delivered.

    Attributes:
        permanent: True when trying again cannot help (bad credentials, unknown chat or
            channel, an untrusted certificate): the notifier then stops until the next job.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


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
    total = round(s)
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_value(value: Any) -> str:
    """A metric or parameter value, short: floats with 6 significant digits, lists bracketed."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | numbers.Integral):
        text = str(value)
    elif isinstance(value, numbers.Real):
        text = f"{float(value):.6g}"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, Mapping):
        text = format_params(value)
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(format_value(v) for v in value[:_MAX_ITEMS])
        text += ", ...]" if len(value) > _MAX_ITEMS else "]"
    elif callable(getattr(value, "tolist", None)):  # numpy scalars and small arrays
        return format_value(value.tolist())
    else:
        text = str(value)
    return _truncate(text, _MAX_VALUE_CHARS)


def format_params(params: Any) -> str:
    """``{'C': 1.0, 'kernel': 'rbf'}`` -> ``"C=1, kernel='rbf'"`` (at most 20 items)."""
    if not isinstance(params, Mapping):
        return format_value(params)
    items = list(params.items())
    parts = [
        f"{k}={v!r}" if isinstance(v, str) else f"{k}={format_value(v)}"
        for k, v in items[:_MAX_ITEMS]
    ]
    if len(items) > _MAX_ITEMS:
        parts.append(f"... (+{len(items) - _MAX_ITEMS} more)")
    return ", ".join(parts)


def format_error(error: Any) -> str | None:
    """One line: ``'ValueError: bad input'`` for an exception, the first line of a string."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
        name = type(error).__name__
        text = f"{name}: {lines[0]}" if lines else name
    else:
        lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
        text = lines[0] if lines else ""
    return _truncate(text, _MAX_ERROR_CHARS)


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _job_label(config: Any) -> str:
    kind = _field(config, "kind") or "job"
    name = _field(config, "name")
    return f"{kind} {str(name)!r}" if name else str(kind)


def _trial_outcome(trial: Any, exception: Any) -> str:
    state = _field(trial, "state")
    state_name = str(getattr(state, "name", state) or "").upper()
    if "PRUNED" in state_name or type(exception).__name__ == "TrialPruned":
        return "pruned"
    if "FAIL" in state_name or exception is not None:
        return "failed"
    return "finished"


class NotifierBase(Callback):
    """A callback that sends a short text message at each job (and optionally trial) event.

    Subclasses implement :meth:`send_message`; they may override the ``*_message`` methods to
    change the text (return ``None`` to send nothing). ``on_info_logged`` sends nothing.

    Args:
        send_message_for_trials: Also send a message when each group trial starts and ends.
        max_consecutive_failures: After this many failed sends in a row, or one permanent
            failure, the notifier stays silent until the next ``on_job_start``, so that a dead
            endpoint does not cost every trial its retry budget.
    """

    # Class-level defaults keep a subclass that forgets ``super().__init__()`` working.
    send_message_for_trials: bool = False
    max_consecutive_failures: int = 3
    _failures: int = 0
    _disabled: bool = False

    def __init__(
        self, *, send_message_for_trials: bool = False, max_consecutive_failures: int = 3
    ) -> None:
        if max_consecutive_failures < 1:
            raise ValueError(
                f"max_consecutive_failures must be >= 1, got {max_consecutive_failures}"
            )
        self.send_message_for_trials = bool(send_message_for_trials)
        self.max_consecutive_failures = max_consecutive_failures
        self._failures = 0
        self._disabled = False

    @abstractmethod
    def send_message(self, msg: str) -> None:
        """Deliver ``msg``; raise (ideally :class:`NotificationError`) when it was not delivered."""

    def secrets(self) -> list[str]:
        """The credential strings this notifier holds (tokens, webhook URLs, passwords)."""
        return []

    def _repr_fields(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        fields = {k: v for k, v in self._repr_fields().items() if v is not None}
        if self.send_message_for_trials:
            fields["send_message_for_trials"] = True
        inner = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"{type(self).__name__}({inner})"

    # -- messages -------------------------------------------------------------------------

    def job_start_message(self, config: Any, **kwargs: Any) -> str | None:
        """``"group 'svm' started"``."""
        lines = [f"{_job_label(config)} started"]
        if kwargs.get("run_id"):
            lines.append(f"run: {kwargs['run_id']}")
        return "\n".join(lines)

    def job_end_message(
        self, config: Any, exception: BaseException | None = None, **kwargs: Any
    ) -> str | None:
        """Finished (duration, best value and params or metrics, trial counts) or failed (the error).

        A group whose trials all failed is reported as failed, even though the group itself ran.
        """
        duration = format_duration(kwargs.get("duration"))
        counts = kwargs.get("counts") if isinstance(kwargs.get("counts"), Mapping) else None
        all_failed = (
            exception is None
            and counts is not None
            and not counts.get("complete")
            and bool(counts.get("fail"))
        )
        if exception is not None or all_failed:
            head = f"{_job_label(config)} failed" + (f" after {duration}" if duration else "")
        else:
            head = f"{_job_label(config)} finished" + (f" in {duration}" if duration else "")
        lines = [head]
        if exception is not None:
            lines.append(f"error: {format_error(exception)}")
        elif all_failed and counts is not None:
            lines.append(f"error: all {counts.get('fail')} trials failed")
        best_value = kwargs.get("best_value")
        if best_value is not None or (
            _field(config, "kind") == "group" and exception is None and not all_failed
        ):
            lines.append(f"best value: {format_value(best_value)}")
        if kwargs.get("best_params"):
            lines.append(f"best params: {format_params(kwargs['best_params'])}")
        if counts is not None:
            lines.append(
                f"trials: {counts.get('complete', 0)} complete, {counts.get('pruned', 0)} pruned, "
                f"{counts.get('fail', 0)} failed"
            )
        if kwargs.get("metrics"):
            lines.append(f"metrics: {format_params(kwargs['metrics'])}")
        if kwargs.get("run_id"):
            lines.append(f"run: {kwargs['run_id']}")
        return "\n".join(lines)

    def trial_start_message(
        self, config: Any, trial: Any, sampled_params: Any = None, **kwargs: Any
    ) -> str | None:
        """``"group 'svm': trial 3 started"`` and the sampled parameters."""
        number = _field(trial, "number")
        lines = [f"{_job_label(config)}: trial {'?' if number is None else number} started"]
        params = sampled_params if sampled_params is not None else _field(trial, "params")
        if params:
            lines.append(f"params: {format_params(params)}")
        return "\n".join(lines)

    def trial_end_message(
        self, config: Any, trial: Any, metric: Any = None, exception: Any = None, **kwargs: Any
    ) -> str | None:
        """``"group 'svm': trial 3 finished in 2.1s"`` (or failed / pruned), value, params, error."""
        number = _field(trial, "number")
        outcome = _trial_outcome(trial, exception)
        head = f"{_job_label(config)}: trial {'?' if number is None else number} {outcome}"
        duration = format_duration(kwargs.get("duration"))
        if duration:
            head += f" in {duration}" if outcome == "finished" else f" after {duration}"
        lines = [head]
        if metric is not None:
            lines.append(f"value: {format_value(metric)}")
        params = _field(trial, "params")
        if params:
            lines.append(f"params: {format_params(params)}")
        if outcome == "failed" and exception is not None:
            lines.append(f"error: {format_error(exception)}")
        return "\n".join(lines)

    # -- hooks ----------------------------------------------------------------------------

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        with _STATE_LOCK:  # a new job gets a fresh chance after an earlier outage
            self._disabled = False
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
        if self._disabled:
            return
        try:
            msg = build(*args, **kwargs)
        except Exception as exc:
            logger.warning(
                "%s could not build a message: %s",
                type(self).__name__,
                self._redact(format_error(exc) or ""),
            )
            return
        if msg:
            self._safe_send(msg)

    def _safe_send(self, msg: str) -> bool:
        """Send ``msg``; log (redacted) and swallow any failure. True when it was sent."""
        name = type(self).__name__
        if self._disabled:
            return False
        try:
            self.send_message(msg)
        except Exception as exc:
            detail = str(exc) if isinstance(exc, NotificationError) else format_error(exc)
            permanent = bool(getattr(exc, "permanent", False))
            with _STATE_LOCK:
                self._failures += 1
                failures = self._failures
                disable = permanent or failures >= self.max_consecutive_failures
                self._disabled = self._disabled or disable
            logger.warning("%s: notification not sent: %s", name, self._redact(detail or ""))
            if disable:
                why = "a permanent error" if permanent else f"{failures} failures in a row"
                logger.warning("%s: silent until the next job starts (after %s)", name, why)
            return False
        with _STATE_LOCK:
            self._failures = 0
        return True
