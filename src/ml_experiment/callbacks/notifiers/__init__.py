"""Notifiers: callbacks that report a job's start, end, failure (and optionally each trial).

Delivery goes through Apprise (Slack, Telegram, e-mail, desktop, Discord, Teams, ntfy, ... by
URL). A notifier never fails the run: its failures are logged on ``ml_experiment.notifiers``
with credentials redacted; ``secrets()`` lists them so that callers can scrub any text.
"""

from ml_experiment.callbacks.notifiers._apprise import (
    AppriseNotifier,
    DesktopNotifier,
    EmailNotifier,
    SlackNotifier,
    TelegramNotifier,
)
from ml_experiment.callbacks.notifiers._base import NotificationError, NotifierBase, format_duration

__all__ = [
    "AppriseNotifier",
    "DesktopNotifier",
    "EmailNotifier",
    "NotificationError",
    "NotifierBase",
    "SlackNotifier",
    "TelegramNotifier",
    "format_duration",
]
