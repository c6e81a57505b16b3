"""Notifiers that POST JSON to a chat service: Slack (incoming webhook) and Telegram (bot API)."""

from __future__ import annotations

import urllib.parse
from typing import Any

from ml_experiment.callbacks.notifiers._base import NotifierBase
from ml_experiment.callbacks.notifiers._retry import (
    RetryPolicy,
    check_http_url,
    post_json,
    redact_url,
    run_with_retry,
)

_SLACK_MAX_CHARS = 39_000  # Slack truncates text beyond 40,000 characters
_TELEGRAM_MAX_CHARS = 4_000  # Telegram refuses messages over 4,096 characters


def _shorten(msg: str, limit: int) -> str:
    return msg if len(msg) <= limit else msg[: limit - 15] + "\n... (truncated)"


class SlackNotifier(NotifierBase):
    """Post messages to a Slack channel through an incoming webhook.

    Args:
        webhook_url: The webhook URL (a secret: it is never shown in ``repr`` or logs).
        channel: Overrides the webhook's channel, e.g. ``"#ml"`` (legacy webhooks only).
        username: Overrides the poster's name (legacy webhooks only).
        timeout: Seconds one attempt may block.
        retries: Attempts after the first on connection errors, timeouts, HTTP 5xx and 429.
        backoff: First retry delay in seconds; doubles at each retry.
        max_backoff: Cap on one delay (``Retry-After`` included).
        max_total_seconds: The most one message may block the job, retries included.
        send_message_for_trials: Also report each group trial.
    """

    def __init__(
        self,
        webhook_url: str,
        channel: str | None = None,
        username: str | None = None,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_total_seconds: float = 15.0,
        send_message_for_trials: bool = False,
    ) -> None:
        super().__init__(send_message_for_trials=send_message_for_trials)
        self._webhook_url = check_http_url(webhook_url, "SlackNotifier", "webhook_url")
        self.channel = channel
        self.username = username
        self.retry_policy = RetryPolicy(timeout, retries, backoff, max_backoff, max_total_seconds)

    def send_message(self, msg: str) -> None:
        payload: dict[str, Any] = {"text": _shorten(msg, _SLACK_MAX_CHARS)}
        if self.channel is not None:
            payload["channel"] = self.channel
        if self.username is not None:
            payload["username"] = self.username
        url = self._webhook_url
        run_with_retry(
            lambda timeout: post_json(url, payload, timeout=timeout),
            self.retry_policy,
            label=f"SlackNotifier POST {redact_url(url)}",
        )

    def secrets(self) -> list[str]:
        parts = urllib.parse.urlsplit(self._webhook_url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return [self._webhook_url] + ([path] if len(path) > 1 else [])

    def _repr_fields(self) -> dict[str, Any]:
        return {"channel": self.channel, "username": self.username}


class TelegramNotifier(NotifierBase):
    """Send messages to a Telegram chat through a bot.

    Args:
        token: The bot token from @BotFather (a secret: never shown in ``repr`` or logs).
        chat_id: The chat to write to: a numeric id or ``"@channelname"``.
        api_url: The Bot API server.
        timeout, retries, backoff, max_backoff, max_total_seconds: as for
            :class:`SlackNotifier`.
        send_message_for_trials: Also report each group trial.
    """

    def __init__(
        self,
        token: str,
        chat_id: int | str,
        *,
        api_url: str = "https://api.telegram.org",
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_total_seconds: float = 15.0,
        send_message_for_trials: bool = False,
    ) -> None:
        super().__init__(send_message_for_trials=send_message_for_trials)
        if not isinstance(token, str) or not token.strip():
            raise ValueError("TelegramNotifier: token must be a non-empty string")
        token = token.strip()
        if any(c in token for c in "/?#") or any(c.isspace() for c in token):
            raise ValueError(
                "TelegramNotifier: token must look like '123456:ABC-DEF...'"
                " (no '/', '?', '#' or spaces)"
            )
        if chat_id is None or (isinstance(chat_id, str) and not chat_id.strip()):
            raise ValueError("TelegramNotifier: chat_id must be a chat id or '@channelname'")
        self._token = token
        self.chat_id = chat_id
        self.api_url = check_http_url(api_url, "TelegramNotifier", "api_url").rstrip("/")
        self.retry_policy = RetryPolicy(timeout, retries, backoff, max_backoff, max_total_seconds)

    def send_message(self, msg: str) -> None:
        payload = {"chat_id": self.chat_id, "text": _shorten(msg, _TELEGRAM_MAX_CHARS)}
        url = f"{self.api_url}/bot{self._token}/sendMessage"
        run_with_retry(
            lambda timeout: post_json(url, payload, timeout=timeout),
            self.retry_policy,
            label=f"TelegramNotifier POST {redact_url(self.api_url)}",
        )

    def secrets(self) -> list[str]:
        return [self._token]

    def _repr_fields(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id}
