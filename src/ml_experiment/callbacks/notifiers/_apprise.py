"""Notifiers on Apprise (https://github.com/caronc/apprise): one URL syntax for 100+ services.

The project keeps the message text, the time budget per message, the silence after repeated
failures and the secrecy of every URL; Apprise does the delivery, its retries and formats.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from ml_experiment.callbacks.notifiers._base import NotificationError, NotifierBase, logger

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRETS: set[str] = set()  # of every Apprise notifier: scrubbed from Apprise's and urllib3's logs
_QUIET = threading.local()  # set while Apprise parses a URL: its warnings may quote tokens


class _Scrub(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_QUIET, "on", False):
            return False
        text = original = record.getMessage()
        for secret in sorted(_SECRETS, key=len, reverse=True):
            text = text.replace(secret, "***")
        if text != original:
            record.msg, record.args = text, None
        return True


_FILTER = _Scrub()
for _name in ("apprise", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(_FILTER)


def expand_env(url: str) -> str:
    """Replace each ``${NAME}`` by the environment variable NAME (nothing else is interpreted)."""

    def value(match: re.Match[str]) -> str:
        if not os.environ.get(match[1]):
            raise ValueError(f"environment variable {match[1]} is not set")
        return os.environ[match[1]]

    return _ENV.sub(value, url)


def _markdown(lines: list[str]) -> str | None:
    # Each "key: value" line -> a bullet, the key in bold, the value as code: values (parameter
    # names, errors) then never turn into markup. None if some line is not of that form.
    pairs = [line.partition(": ") for line in lines]
    if not lines or not all(sep and key.replace(" ", "").isalpha() for key, sep, _ in pairs):
        return None
    return "\n".join(f"- **{key}:** `{value.replace('`', chr(39))}`" for key, _, value in pairs)


class AppriseNotifier(NotifierBase):
    """Send each event to one or more services named by Apprise URLs.

    ``AppriseNotifier("discord://id/token", "ntfy://topic")``; see Apprise's wiki page
    "Notify_Custom_JSON" and its URL reference for every service. ``${NAME}`` in a URL is
    replaced by the environment variable NAME. URLs are secrets: never in ``repr`` or logs.

    Args:
        urls: Apprise URLs; each gets every message.
        timeout: Seconds one attempt may wait to connect and for each answer.
        retries: Attempts after the first, ``retry_wait`` seconds apart (Apprise's retry).
        retry_wait: Seconds between attempts.
        max_total_seconds: The most one message may keep the job waiting, retries included.
        min_interval: Seconds between two messages to one service; None keeps Apprise's rate
            limit for it (Slack 1.2 s, e-mail 5.5 s, ...).
        send_message_for_trials, max_consecutive_failures: as for :class:`NotifierBase`.
    """

    _title_always = False

    def __init__(
        self,
        *urls: str,
        timeout: float = 5.0,
        retries: int = 2,
        retry_wait: float = 0.5,
        max_total_seconds: float = 15.0,
        min_interval: float | None = None,
        send_message_for_trials: bool = False,
        max_consecutive_failures: int = 3,
    ) -> None:
        super().__init__(
            send_message_for_trials=send_message_for_trials,
            max_consecutive_failures=max_consecutive_failures,
        )
        name = type(self).__name__
        if not (0 <= retries <= 10 and timeout > 0 and max_total_seconds > 0):
            raise ValueError(
                f"{name}: retries must be in 0..10, timeout and max_total_seconds > 0"
                f" (got {retries}, {timeout}, {max_total_seconds})"
            )
        self.max_total_seconds = float(max_total_seconds)
        # A subclass may set _secrets first: values it turned into the URL (a raw password).
        self._secrets: list[str] = list(self.__dict__.get("_secrets", []))
        self._services: list[Any] = []
        for i, url in enumerate(urls, 1):
            try:
                plugin = self._instantiate(url)
            except ValueError as exc:
                raise ValueError(f"{name}: URL {i}: {exc}") from None
            given = {k for k, _ in parse_qsl(urlsplit(url).query)}
            for arg, attr, value in (
                ("cto", "socket_connect_timeout", timeout),
                ("rto", "socket_read_timeout", timeout),
                ("retry", "retry", retries),
                ("wait", "wait", retry_wait),
            ):
                if arg not in given:  # what the URL says wins
                    setattr(plugin, attr, value)
            if min_interval is not None:
                plugin.request_rate_per_sec = min_interval
            self._services.append(plugin)
        _SECRETS.update(self.secrets())

    def _instantiate(self, url: str) -> Any:
        import apprise

        url = expand_env(url.strip()) if isinstance(url, str) else ""
        if "://" not in url:
            raise ValueError("must be an Apprise URL such as 'slack://...' (see the README)")
        parts = urlsplit(url)
        _QUIET.on = True
        try:
            plugin = apprise.Apprise.instantiate(
                url, asset=apprise.AppriseAsset(app_id="ml-experiment", app_desc="ml-experiment")
            )
        finally:
            _QUIET.on = False
        if plugin is None:
            raise ValueError(
                f"Apprise cannot use this {parts.scheme}:// URL: unknown service, a token missing"
                " or malformed, or a library the service needs is not installed"
            )
        found = [url, parts.path + ("?" + parts.query if parts.query else ""), parts.password]
        specs = {**plugin.template_tokens, **plugin.template_args}
        for key, spec in specs.items():  # the tokens Apprise itself hides: Slack's, a bot's...
            found.append(
                getattr(plugin, spec.get("map_to", key), None) if spec.get("private") else None
            )
        self._secrets += [s for s in found if isinstance(s, str)]
        return plugin

    def secrets(self) -> list[str]:
        return [s for s in self._secrets if len(s) >= 4]

    def send_message(self, msg: str) -> None:
        import apprise

        title, *lines = msg.strip().splitlines() or [""]
        failures = []
        kind = apprise.NotifyType.FAILURE if " failed" in title else apprise.NotifyType.INFO
        for plugin in self._services:
            # Markdown where it is the service's own format (Slack, or a URL's format=markdown);
            # elsewhere text, which Apprise turns into HTML where needed (Telegram, e-mail).
            fmt = plugin.resolve_format(None)
            rich = _markdown(lines) if fmt == apprise.NotifyFormat.MARKDOWN else None
            body = rich or "\n".join(lines)
            one = apprise.Apprise(asset=plugin.asset)
            one.add(plugin)
            result = one.notify(
                body=body or title,
                title=title if body or self._title_always else "",
                body_format=fmt if rich else apprise.NotifyFormat.TEXT,
                notify_type=kind,
                timeout=self.max_total_seconds,
            )
            for service in () if result else result:
                logs = [e.message for a in service.attempts for e in a.logs]
                why = logs[-1] if logs else service.status.name.lower()
                failures.append(f"{service.name}: {len(service)} attempt(s), last: {why}")
        if failures:
            raise NotificationError(self._redact("; ".join(failures)))


class SlackNotifier(AppriseNotifier):
    """Post to a Slack channel through an incoming webhook (``https://hooks.slack.com/...``).

    Args:
        webhook_url: The webhook URL (a secret). channel: e.g. ``"#ml"``. username: the poster.
        **options: as for :class:`AppriseNotifier`.
    """

    def __init__(
        self,
        webhook_url: str,
        channel: str | None = None,
        username: str | None = None,
        **options: Any,
    ) -> None:
        parts = urlsplit(webhook_url if isinstance(webhook_url, str) else "")
        tokens = parts.path.strip("/").split("/")[1:]
        if parts.scheme != "https" or parts.hostname != "hooks.slack.com" or len(tokens) != 3:
            raise ValueError(
                "SlackNotifier: webhook_url must look like https://hooks.slack.com/services/T.../B.../..."
                " (other services: AppriseNotifier)"
            )
        who = quote(username, safe="") + "@" if username else ""
        where = "/" + quote(channel, safe="") if channel else ""
        self._secrets = [webhook_url]
        super().__init__(f"slack://{who}{'/'.join(tokens)}{where}/?footer=no&image=no", **options)


class TelegramNotifier(AppriseNotifier):
    """Send to a Telegram chat through a bot: ``token`` from @BotFather (a secret), ``chat_id``
    a numeric id or ``"@channelname"``; ``**options`` as for :class:`AppriseNotifier`."""

    def __init__(self, token: str, chat_id: int | str, **options: Any) -> None:
        if not isinstance(token, str) or not re.fullmatch(r"\d+:[\w-]+", token.strip()):
            raise ValueError("TelegramNotifier: token must look like '123456:ABC-DEF...'")
        if not str(chat_id).strip():
            raise ValueError("TelegramNotifier: chat_id must be a chat id or '@channelname'")
        chat = quote(str(chat_id).strip(), safe="")
        super().__init__(f"tgram://{token.strip()}/{chat}/?overflow=truncate", **options)


class EmailNotifier(AppriseNotifier):
    _title_always = True  # the subject
    """Send each event as an e-mail over SMTP; the subject is ``subject_prefix`` + the headline.

    Certificates are checked against the system's CAs (``SSL_CERT_FILE`` names another bundle).

    Args:
        to: One address or a list. sender: The From address. host, port: The SMTP server (port
            587 for ``starttls``, 465 for ``ssl``, 25 for ``none``). security: ``"starttls"``,
            ``"ssl"`` or ``"none"``. username, password: The login (password: a secret).
        **options: as for :class:`AppriseNotifier`.
    """

    def __init__(
        self,
        to: str | Sequence[str],
        *,
        sender: str,
        host: str = "localhost",
        port: int | None = None,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        subject_prefix: str = "[ml-experiment]",
        ssl_context: Any = None,
        **options: Any,
    ) -> None:
        modes = {"starttls": 587, "ssl": 465, "none": 25}
        to = [to] if isinstance(to, str) else list(to)
        for bad, problem in (
            (
                security not in modes,
                f"unknown security {security!r}. Available: {', '.join(modes)}.",
            ),
            (not to, "to must name at least one address"),
            (any("\n" in a or "," in a for a in [*to, sender]), "one e-mail address per string"),
            (password and not username, "password given without username"),
            (ssl_context is not None, "ssl_context is not supported: set SSL_CERT_FILE instead"),
        ):
            if bad:
                raise ValueError(f"EmailNotifier: {problem}")
        self.subject_prefix = subject_prefix
        self._secrets = [password] if password else []
        login = quote(username or "", safe="") + (
            ":" + quote(password, safe="") if password else ""
        )
        query = {"smtp": host, "from": sender, "to": ",".join(to)}
        query["mode"] = {"none": "insecure"}.get(security, security)
        url = f"mailto{'' if security == 'none' else 's'}://{login + '@' if login else ''}"
        query_text = urlencode(query, quote_via=quote)
        super().__init__(f"{url}{host}:{port or modes[security]}?{query_text}", **options)

    def send_message(self, msg: str) -> None:
        super().send_message(f"{self.subject_prefix} {msg.lstrip()}".strip())


class DesktopNotifier(AppriseNotifier):
    """A pop-up on the machine that runs the job driver (D-Bus/GLib, macOS, Windows).

    Where the platform offers none (or Apprise lacks the library it needs: dbus-python or
    PyGObject on Linux, terminal-notifier on macOS, pywin32 on Windows) a warning is logged
    once and the notifier stays silent.
    """

    def __init__(self, **options: Any) -> None:
        candidates = {"darwin": ["macosx://"], "win32": ["windows://"]}
        for url in candidates.get(sys.platform, ["dbus://", "glib://", "gnome://"]):
            try:
                super().__init__(url, **options)
                return
            except ValueError:
                continue
        super().__init__(**options)

    def send_message(self, msg: str) -> None:
        if self._services:
            super().send_message(msg)
        elif not getattr(self, "_warned", False):
            self._warned = True
            logger.warning("DesktopNotifier: no desktop notification service is available here")
