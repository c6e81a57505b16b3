"""Notifiers: callbacks that report a job's start, end, failure (and optionally each trial).

Every notifier swallows its own failures (they are logged on ``ml_experiment.notifiers`` with
credentials redacted), retries within a bounded time budget, and keeps its credentials out of
``repr``; ``secrets()`` lists them so that callers can scrub any text.
"""

from ml_experiment.callbacks.notifiers._base import (
    NotificationError,
    NotifierBase,
    format_duration,
)
from ml_experiment.callbacks.notifiers._desktop import DesktopNotifier
from ml_experiment.callbacks.notifiers._email import EmailNotifier
from ml_experiment.callbacks.notifiers._http import SlackNotifier, TelegramNotifier
from ml_experiment.callbacks.notifiers._retry import RetryPolicy

__all__ = [
    "DesktopNotifier",
    "EmailNotifier",
    "NotificationError",
    "NotifierBase",
    "RetryPolicy",
    "SlackNotifier",
    "TelegramNotifier",
    "format_duration",
]
