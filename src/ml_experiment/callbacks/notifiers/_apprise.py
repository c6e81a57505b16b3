"""Notifiers on Apprise: one URL syntax for 100+ services; Apprise delivers, retries and formats."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from ml_experiment.callbacks.notifiers._base import NotificationError, NotifierBase, logger
from ml_experiment.tracking.redact import scrub

_SECRETS: set[str] = set()  # of every notifier, scrubbed from Apprise's and urllib3's records
_QUIET = threading.local()  # set while Apprise parses a URL: its warnings may quote a token
# The URL arguments for which AppriseNotifier sets a default, and the plugin attribute each sets.
_OPTIONS = dict(cto="socket_connect_timeout", rto="socket_read_timeout", retry="retry", wait="wait")


class _Scrub(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if (text := scrub(record.getMessage(), _SECRETS)) != record.getMessage():
            record.msg, record.args = text, None
        return not getattr(_QUIET, "on", False)


for _name in ("apprise", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(_Scrub())


def expand_env(url: str) -> str:
    """Replace each ``${NAME}`` by the environment variable NAME; nothing else is interpreted."""

    def value(match: re.Match[str]) -> str:
        if not os.environ.get(match[1]):
            raise ValueError(f"environment variable {match[1]} is not set")
        return os.environ[match[1]]

    return re.sub(r"\$\{([A-Za-z_]\w*)\}", value, url)


def _markdown(lines: list[str]) -> str | None:
    # "key: value" lines as bullets, the key bold, the value code (so it never turns into markup).
    pairs = [line.partition(": ") for line in lines]
    if not lines or not all(sep and key.replace(" ", "").isalpha() for key, sep, _ in pairs):
        return None
    return "\n".join(f"- **{key}:** `{value.replace('`', chr(39))}`" for key, _, value in pairs)


class AppriseNotifier(NotifierBase):
    """Send each event to the services named by Apprise URLs (``"discord://id/token"``, ...).

    ``${NAME}`` in a URL is read from the environment. URLs are secrets: never in logs.
    ``timeout``: seconds one attempt waits to connect and for each answer; ``retries`` more
    attempts, ``retry_wait`` seconds apart (Apprise's); ``max_total_seconds``: the most one
    message keeps the job waiting; ``min_interval``: seconds between two messages to a service
    (None: Apprise's rate limit for it, e.g. 1.2 s Slack, 5.5 s e-mail). What a URL sets wins.
    """

    # A thin subclass: the service its URL must name, and what its argument must look like.
    _service, _hint, _title_always = "", "", False  # _title_always: e-mail's subject

    def __init__(
        self,
        *urls: str,
        timeout: float = 5.0,
        retries: int = 2,
        retry_wait: float = 0.5,
        max_total_seconds: float = 15.0,
        min_interval: float | None = None,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        if not (0 <= retries <= 10 and timeout > 0 and max_total_seconds > 0):
            raise ValueError(
                f"{type(self).__name__}: retries must be in 0..10, timeout and max_total_seconds"
                f" > 0 (got {retries}, {timeout}, {max_total_seconds})"
            )
        self.max_total_seconds, self.min_interval = float(max_total_seconds), min_interval
        self._defaults = {"cto": timeout, "rto": timeout, "retry": retries, "wait": retry_wait}
        self._secrets: list[str] = []
        self._services: list[Any] = []  # Apprise plugins
        for i, url in enumerate(urls, 1):
            try:
                self._add(url)
            except ValueError as exc:
                where = "" if self._hint else f"URL {i}: "
                raise ValueError(f"{type(self).__name__}: {where}{exc}") from None

    def _add(self, given: str) -> None:
        import apprise

        asset = apprise.AppriseAsset(app_id="ml-experiment", app_desc="ml-experiment")
        _QUIET.on = True
        try:
            url = expand_env(str(given).strip())
            if "://" not in url:
                raise ValueError("must be an Apprise URL such as 'slack://...' (see the README)")
            plugin, parts = apprise.Apprise.instantiate(url, asset=asset), urlsplit(url)
        finally:
            _QUIET.on = False
        if plugin is None or self._service not in ("", plugin.service_name):
            raise ValueError(
                self._hint
                or f"Apprise cannot use this {parts.scheme}:// URL: unknown service, a token"
                " missing or malformed, or a library the service needs is not installed"
            )
        specs = {**plugin.template_tokens, **plugin.template_args}  # the tokens Apprise hides
        found = [url, url.partition("?")[0], parts.path, parts.password]
        found += [
            getattr(plugin, s.get("map_to", k), None) for k, s in specs.items() if s.get("private")
        ]
        self._secrets += [s for s in found if isinstance(s, str) and len(s) >= 4]
        _SECRETS.update(self._secrets)
        for arg in self._defaults.keys() - dict(parse_qsl(parts.query)).keys():
            setattr(plugin, _OPTIONS[arg], self._defaults[arg])
        if self.min_interval is not None:
            plugin.request_rate_per_sec = self.min_interval
        self._services.append(plugin)

    def secrets(self) -> list[str]:
        return list(self._secrets)

    def send_message(self, msg: str) -> None:
        import apprise

        title, *lines = msg.strip().splitlines() or [""]
        kind = apprise.NotifyType.FAILURE if " failed" in title else apprise.NotifyType.INFO
        deadline, failures = time.monotonic() + self.max_total_seconds, []
        for plugin in self._services:
            # Markdown where it is the service's own format (Slack, a URL's format=markdown);
            # elsewhere text, which Apprise turns into HTML where needed (Telegram, e-mail).
            rich = _markdown(lines) if plugin.resolve_format(None) == "markdown" else None
            body = rich or "\n".join(lines)
            result = apprise.Apprise([plugin], asset=plugin.asset).notify(
                body=body or title,
                title=title if body or self._title_always else "",
                body_format="markdown" if rich else "text",
                notify_type=kind,
                timeout=max(0.1, deadline - time.monotonic()),
            )
            for service in () if result else result:
                logs = [e.message for a in service.attempts for e in a.logs] or ["timed out"]
                failures.append(f"{service.name}: {len(service)} attempt(s), last: {logs[-1]}")
        if failures:
            raise NotificationError("; ".join(failures))  # Apprise's records come scrubbed


class SlackNotifier(AppriseNotifier):
    """Post to a Slack channel (``"#ml"``) through an incoming webhook, as ``username``."""

    _service = "Slack"
    _hint = "webhook_url must look like https://hooks.slack.com/services/T/B/X (other services: AppriseNotifier)"

    def __init__(
        self, webhook_url: str, channel: str | None = None, username: str | None = None, **kw: Any
    ) -> None:
        args = {"to": channel, "user": username, "footer": "no", "image": "no"}
        super().__init__(f"{webhook_url}?{urlencode({k: v for k, v in args.items() if v})}", **kw)


class TelegramNotifier(AppriseNotifier):
    """Send to a Telegram chat (an id or ``"@channel"``) through a bot (``token``: a secret)."""

    _service, _hint = "Telegram", "token must look like '123456:ABC-DEF...'"

    def __init__(self, token: str, chat_id: int | str, **kw: Any) -> None:
        token, chat = (quote(str(s).strip(), safe=":") for s in (token, chat_id))
        super().__init__(f"tgram://{token}/{chat}/?overflow=truncate", **kw)


class EmailNotifier(AppriseNotifier):
    """An e-mail per event over SMTP; subject: ``subject_prefix`` and the headline.

    ``security``: ``"starttls"`` (port 587), ``"ssl"`` (465) or ``"none"`` (25). Certificates
    are checked against the system's CAs; ``SSL_CERT_FILE`` names another bundle.
    """

    _service, _title_always = "E-Mail", True

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
        **kw: Any,
    ) -> None:
        ports = {"starttls": 587, "ssl": 465, "none": 25}
        to = [to] if isinstance(to, str) else list(to)
        for bad, problem in (
            (
                security not in ports,
                f"unknown security {security!r}. Available: {', '.join(ports)}",
            ),
            (not to, "to must name at least one address"),
            (any("\n" in a or "," in a for a in [*to, sender]), "one e-mail address per string"),
            (password and not username, "password given without username"),
            (ssl_context is not None, "ssl_context is not supported: set SSL_CERT_FILE instead"),
        ):
            if bad:
                raise ValueError(f"EmailNotifier: {problem}")
        self.subject_prefix = subject_prefix
        login = ":".join(quote(s, safe="") for s in (username, password) if s)
        mode = {"none": "insecure"}.get(security, security)
        query = urlencode(
            {"smtp": host, "from": sender, "to": ",".join(to), "mode": mode}, quote_via=quote
        )
        scheme = "mailto" if security == "none" else "mailtos"
        super().__init__(
            f"{scheme}://{login}{'@' * bool(login)}{host}:{port or ports[security]}?{query}", **kw
        )

    def send_message(self, msg: str) -> None:
        super().send_message(f"{self.subject_prefix} {msg.lstrip()}".strip())


class DesktopNotifier(AppriseNotifier):
    """A pop-up where the job driver runs: D-Bus or GLib (dbus-python or PyGObject), macOS
    (terminal-notifier), Windows (pywin32); where none is available: one warning, then silence."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        for url in {"darwin": ["macosx://"], "win32": ["windows://"]}.get(
            sys.platform, ["dbus://", "glib://", "gnome://"]
        ):
            with contextlib.suppress(ValueError):
                return self._add(url)

    def send_message(self, msg: str) -> None:
        if not self._services and not getattr(self, "_warned", False):
            self._warned = True
            logger.warning("DesktopNotifier: no desktop notification service is available here")
        super().send_message(msg)
