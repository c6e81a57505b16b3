"""``NotifierBase``: job and trial events as short text messages; a failed send never fails a run."""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from ml_experiment.callbacks._base import Callback
from ml_experiment.exceptions import MLExperimentError
from ml_experiment.tracking.redact import scrub

logger = logging.getLogger("ml_experiment.notifiers")


class NotificationError(MLExperimentError):
    """A notification could not be delivered."""


def format_duration(seconds: Any) -> str | None:
    """``0.53`` -> ``'0.5s'``, ``65`` -> ``'1m 05s'``, ``3725`` -> ``'1h 02m 05s'``; None if unknown."""
    s = float(seconds) if isinstance(seconds, numbers.Real) else math.nan
    if not math.isfinite(s) or s < 0:
        return None
    minutes, sec = divmod(round(s), 60)
    h, m = divmod(minutes, 60)
    return f"{s:.1f}s" if s < 59.95 else f"{h}h {m:02d}m {sec:02d}s" if h else f"{m}m {sec:02d}s"


def format_value(value: Any) -> str:
    """Short text: ``0.123457`` (6 significant digits), ``'rbf'``, ``[1, 2]``, ``C=1, kernel='rbf'``
    for a mapping; at most 20 items."""
    value = value.tolist() if callable(getattr(value, "tolist", None)) else value  # numpy
    if isinstance(value, Mapping):
        items = [f"{k}={format_value(v)}" for k, v in value.items()]
        return ", ".join(items[:20] + [f"... (+{len(items) - 20} more)"] * (len(items) > 20))
    if isinstance(value, list | tuple):
        text = ", ".join(map(format_value, value[:20])) + ", ..." * (len(value) > 20)
        return f"[{text[:198]}]"
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return f"{float(value):.6g}"
    return "n/a" if value is None else (repr if isinstance(value, str) else str)(value)[:200]


def format_error(error: Any) -> str | None:
    """One line: ``'ValueError: bad input'`` for an exception, the first line of a string."""
    if error is None:
        return None
    first = (str(error).strip().splitlines() or [""])[0].strip()
    kind = type(error).__name__ if isinstance(error, BaseException) else ""
    return ": ".join(filter(None, [kind, first]))[:300]


_COUNTS = (("complete", "complete"), ("pruned", "pruned"), ("fail", "failed"))


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _head(config: Any, trial: Any, outcome: str, seconds: Any = None) -> str:
    kind, name = _field(config, "kind") or "job", _field(config, "name")
    head = f"{kind} {str(name)!r}" if name else str(kind)
    if trial is not None:
        head += f": trial {'?' if _field(trial, 'number') is None else _field(trial, 'number')}"
    duration = format_duration(seconds)
    when = f" {'in' if outcome == 'finished' else 'after'} {duration}" if duration else ""
    return f"{head} {outcome}{when}"


def _lines(head: str, **fields: Any) -> str:
    return "\n".join([head, *(f"{k.replace('_', ' ')}: {v}" for k, v in fields.items() if v)])


class NotifierBase(Callback):
    """A callback that sends a short text message at each job (and optionally trial) event.

    Subclasses implement :meth:`send_message`; they may override the ``*_message`` methods to
    change the text (return ``None`` to send nothing). ``on_info_logged`` sends nothing.
    After ``max_consecutive_failures`` failed sends in a row the notifier is silent until the
    next ``on_job_start``: a dead endpoint does not cost every trial its time budget.
    """

    # Class-level defaults keep a subclass that forgets ``super().__init__()`` working.
    send_message_for_trials, max_consecutive_failures, _failures = False, 3, 0

    def __init__(
        self, *, send_message_for_trials: bool = False, max_consecutive_failures: int = 3
    ) -> None:
        if max_consecutive_failures < 1:
            raise ValueError(
                f"max_consecutive_failures must be >= 1, got {max_consecutive_failures}"
            )
        self.send_message_for_trials = bool(send_message_for_trials)
        self.max_consecutive_failures = max_consecutive_failures

    def send_message(self, msg: str) -> None:
        """Deliver ``msg`` (its first line is the headline); raise when it was not delivered."""
        raise NotImplementedError(f"{type(self).__name__} must implement send_message(msg)")

    def secrets(self) -> list[str]:
        """The credential strings this notifier holds (tokens, webhook URLs, passwords)."""
        return []

    def job_start_message(self, config: Any, **kwargs: Any) -> str | None:
        """``"group 'svm' started"``."""
        return _lines(_head(config, None, "started"), run=kwargs.get("run_id"))

    def job_end_message(
        self, config: Any, exception: BaseException | None = None, **kw: Any
    ) -> str | None:
        """Finished (duration, best value and params or metrics, trial counts) or failed (the
        error); a group whose trials all failed is reported as failed."""
        c = kw["counts"] if isinstance(kw.get("counts"), Mapping) else {}
        error = format_error(exception)
        if not error and c.get("fail") and not c.get("complete"):
            error = f"all {c['fail']} trials failed"
        best = kw.get("best_value") is not None or (_field(config, "kind") == "group" and not error)
        return _lines(
            _head(config, None, "failed" if error else "finished", kw.get("duration")),
            error=error,
            best_value=best and format_value(kw.get("best_value")),
            best_params=kw.get("best_params") and format_value(kw["best_params"]),
            trials=c and ", ".join(f"{c.get(k, 0)} {w}" for k, w in _COUNTS),
            metrics=kw.get("metrics") and format_value(kw["metrics"]),
            run=kw.get("run_id"),
        )

    def trial_start_message(
        self, config: Any, trial: Any, sampled_params: Any = None, **kw: Any
    ) -> str | None:
        """``"group 'svm': trial 3 started"`` and the sampled parameters."""
        params = sampled_params if sampled_params is not None else _field(trial, "params")
        return _lines(_head(config, trial, "started"), params=params and format_value(params))

    def trial_end_message(
        self, config: Any, trial: Any, metric: Any = None, exception: Any = None, **kw: Any
    ) -> str | None:
        """``"group 'svm': trial 3 finished in 2.1s"`` (or failed / pruned), value, params, error."""
        state = _field(trial, "state")
        state = str(getattr(state, "name", state) or "").upper()
        pruned = "PRUNED" in state or type(exception).__name__ == "TrialPruned"
        failed = "FAIL" in state or exception is not None
        outcome = "pruned" if pruned else "failed" if failed else "finished"
        return _lines(
            _head(config, trial, outcome, kw.get("duration")),
            value=metric is not None and format_value(metric),
            params=format_value(_field(trial, "params") or {}),
            error=outcome == "failed" and format_error(exception),
        )

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        self._failures = 0  # a new job gets a fresh chance after an earlier outage
        self._notify(self.job_start_message, config, **kwargs)

    def on_job_end(self, config: Any, exception: BaseException | None = None, **kw: Any) -> None:
        self._notify(self.job_end_message, config, exception=exception, **kw)

    def on_trial_start(self, *args: Any, **kwargs: Any) -> None:
        if self.send_message_for_trials:
            self._notify(self.trial_start_message, *args, **kwargs)

    def on_trial_end(self, *args: Any, **kwargs: Any) -> None:
        if self.send_message_for_trials:
            self._notify(self.trial_end_message, *args, **kwargs)

    def _notify(self, build: Callable[..., str | None], *args: Any, **kwargs: Any) -> None:
        if self._failures >= self.max_consecutive_failures:
            return
        name, msg = type(self).__name__, None
        try:
            if msg := build(*args, **kwargs):
                self.send_message(msg)
                self._failures = 0
        except Exception as exc:
            what = "could not build a message" if msg is None else "notification not sent"
            detail = str(exc) if isinstance(exc, NotificationError) else format_error(exc)
            logger.warning("%s: %s: %s", name, what, scrub(detail or "", self.secrets()))
            self._failures += msg is not None
            if self._failures >= self.max_consecutive_failures:
                logger.warning(
                    "%s: silent until the next job starts (%d failures in a row)",
                    name,
                    self._failures,
                )
