"""Notifiers: callbacks that report a job's start and end (optionally each trial) through
Apprise: Slack, Telegram, e-mail, desktop, Discord, Teams, ntfy, ... by URL. A notifier never
fails the run; its failures are logged on ``ml_experiment.notifiers``, credentials redacted."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from ml_experiment._format import format_duration
from ml_experiment.callbacks._base import Callback
from ml_experiment.exceptions import MLExperimentError
from ml_experiment.tracking.redact import scrub

logger = logging.getLogger("ml_experiment.notifiers")


class NotificationError(MLExperimentError):
    """A notification could not be delivered."""


def format_value(value: Any) -> str:
    """``0.123457`` (6 significant digits), ``'rbf'``, ``[1, 2]``, ``C=1, kernel='rbf'``."""
    value = value.tolist() if hasattr(value, "tolist") else value  # numpy
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={format_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return f"[{', '.join(map(format_value, value))}]"
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


def format_error(error: Any) -> str | None:
    """One line: ``'ValueError: bad input'`` for an exception, the first line of a string."""
    first = (str(error).strip().splitlines() or [""])[0].strip()
    kind = type(error).__name__ if isinstance(error, BaseException) else ""
    return None if error is None else ": ".join(filter(None, [kind, first]))[:300]


def _head(config: Any, trial: Any, outcome: str, seconds: Any = None) -> str:
    """``"group 'svm': trial 3 finished in 2.1s"``."""
    kind, name = getattr(config, "kind", None) or "job", getattr(config, "name", None)
    head = f"{kind} {str(name)!r}" if name else str(kind)
    head += "" if trial is None else f": trial {getattr(trial, 'number', '?')}"
    if duration := format_duration(seconds):
        outcome += f" {'in' if outcome == 'finished' else 'after'} {duration}"
    return f"{head} {outcome}"


def _lines(head: str, **kw: Any) -> str:
    """The headline, then ``key: value`` for each field that is neither None nor empty."""
    texts = {k: v if isinstance(v, str | None) else format_value(v) for k, v in kw.items()}
    return "\n".join([head, *(f"{k.replace('_', ' ')}: {v}" for k, v in texts.items() if v)])


class NotifierBase(Callback):
    """A callback that sends a short text message at each job (and optionally trial) event.

    Subclasses implement :meth:`send_message`; they may override the ``*_message`` methods to
    change the text (return ``None`` to send nothing). After ``max_consecutive_failures``
    failed sends in a row it is silent until the next ``on_job_start``: a dead endpoint does
    not cost every trial its time budget."""

    # Class-level defaults keep a subclass that forgets ``super().__init__()`` working.
    send_message_for_trials, max_consecutive_failures, _failures = False, 3, 0

    def __init__(
        self, *, send_message_for_trials: bool = False, max_consecutive_failures: int = 3
    ) -> None:
        if max_consecutive_failures < 1:
            raise ValueError(f"max_consecutive_failures must be >= 1: {max_consecutive_failures}")
        self.send_message_for_trials = bool(send_message_for_trials)
        self.max_consecutive_failures = max_consecutive_failures

    def send_message(self, msg: str) -> None:
        """Deliver ``msg`` (its first line is the headline); raise when it was not delivered."""
        raise NotImplementedError(f"{type(self).__name__} must implement send_message(msg)")

    def secrets(self) -> list[str]:
        """The credential strings this notifier holds (tokens, webhook URLs, passwords)."""
        return []

    def job_start_message(self, config: Any, **kw: Any) -> str | None:
        return _lines(_head(config, None, "started"), run=kw.get("run_id"))

    def job_end_message(self, config: Any, exception: Any = None, **kw: Any) -> str | None:
        """Finished (best value and params, trial counts, metrics) or failed (error or trials)."""
        counts = kw.get("counts") or {}
        complete, pruned, fail = (counts.get(k, 0) for k in ("complete", "pruned", "fail"))
        if not (error := format_error(exception)) and fail and not complete:
            error = f"all {fail} trials failed"
        return _lines(
            _head(config, None, "failed" if error else "finished", kw.get("duration")),
            error=error,
            best_value=kw.get("best_value"),
            best_params=kw.get("best_params"),
            trials=f"{complete} complete, {pruned} pruned, {fail} failed" if counts else None,
            metrics=kw.get("metrics"),
            run=kw.get("run_id"),
        )

    def trial_start_message(
        self, config: Any, trial: Any, sampled_params: Any = None, **kw: Any
    ) -> str | None:
        return _lines(_head(config, trial, "started"), params=sampled_params)

    def trial_end_message(
        self, config: Any, trial: Any, metric: Any = None, exception: Any = None, **kw: Any
    ) -> str | None:
        state = str(getattr(trial, "state", "")).upper()  # "FAIL" or optuna's TrialState.FAIL
        pruned = "PRUNED" in state or type(exception).__name__ == "TrialPruned"
        failed = not pruned and ("FAIL" in state or exception is not None)
        outcome = "pruned" if pruned else "failed" if failed else "finished"
        head = _head(config, trial, outcome, kw.get("duration"))
        error = format_error(exception) if failed else None
        return _lines(head, value=metric, params=getattr(trial, "params", None), error=error)

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
            if self._failures == self.max_consecutive_failures:
                logger.warning("%s: silent until the next job starts", name)


_SECRETS: set[str] = set()  # of every notifier, scrubbed from Apprise's and urllib3's records
_QUIET = threading.local()  # set while Apprise parses a URL: its warnings may quote a token
_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)\}")


def _scrub_record(record: logging.LogRecord) -> bool:
    if (text := scrub(record.getMessage(), _SECRETS)) != record.getMessage():
        record.msg, record.args = text, None
    return not getattr(_QUIET, "on", False)


for _name in ("apprise", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(_scrub_record)


def expand_env(url: str) -> str:
    """Replace each ``${NAME}`` by the environment variable NAME; nothing else is interpreted."""
    for name in _VARIABLE.findall(url):
        if not os.environ.get(name):
            raise ValueError(f"environment variable {name} is not set")
    return _VARIABLE.sub(lambda match: os.environ[match[1]], url)


def _markdown(lines: list[str]) -> str | None:
    # "key: value" lines as bullets, the key bold, the value code (so it never turns into markup).
    pairs = [line.partition(": ") for line in lines]
    if not lines or not all(sep and key.replace(" ", "").isalpha() for key, sep, _ in pairs):
        return None
    return "\n".join(f"- **{key}:** `{value.replace('`', chr(39))}`" for key, _, value in pairs)


class AppriseNotifier(NotifierBase):
    """Send each event to the services of Apprise URLs (``"discord://id/token"``, ``${NAME}``
    read from the environment; URLs are secrets, never logged). ``timeout``: seconds an attempt
    waits to connect and for each answer; ``retries`` more attempts ``retry_wait`` s apart, all
    within ``max_total_seconds`` per message; what a URL sets (``cto``, ``retry``, ...) wins."""

    _service, _hint = "", ""  # a subclass's service, and what its argument must look like

    def __init__(
        self,
        *urls: str,
        timeout: float = 5.0,
        retries: int = 2,
        retry_wait: float = 0.5,
        max_total_seconds: float = 15.0,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        if retries < 0 or timeout <= 0 or max_total_seconds <= 0:
            raise ValueError("need retries >= 0, timeout > 0 and max_total_seconds > 0")
        self.max_total_seconds = max_total_seconds
        self._defaults = {"cto": timeout, "rto": timeout, "retry": retries, "wait": retry_wait}
        self._secrets: list[str] = []
        self._services: list[Any] = []  # Apprise plugins
        for i, url in enumerate(urls, 1):
            self._add(url, where="" if self._hint else f"URL {i}: ")

    def _add(self, given: str, where: str = "") -> None:
        import apprise

        _QUIET.on = True
        try:
            url = expand_env(str(given).strip())
            parts, given_args = urlsplit(url), parse_qs(url.partition("?")[2])  # "#chan?retry=1"
            defaults = {k: v for k, v in self._defaults.items() if k not in given_args}
            asset = apprise.AppriseAsset(app_id="ml-experiment", app_desc="ml-experiment")
            plugin = apprise.Apprise.instantiate(
                f"{url}{'&' if '?' in url else '?'}{urlencode(defaults)}", asset=asset
            )
            if plugin is None or self._service not in ("", plugin.service_name):
                raise ValueError(
                    self._hint
                    or "not an Apprise URL such as 'slack://...' (see the README): unknown service,"
                    " a token missing or malformed, or a library the service needs not installed"
                )
        except ValueError as exc:
            raise ValueError(f"{type(self).__name__}: {where}{exc}") from None
        finally:
            _QUIET.on = False
        specs = {**plugin.template_tokens, **plugin.template_args}.items()  # Apprise hides these
        found = [getattr(plugin, s.get("map_to", k), None) for k, s in specs if s.get("private")]
        found += [url, url.partition("?")[0], parts.path, parts.password]
        self._secrets += [s for s in found if isinstance(s, str) and len(s) >= 4]
        _SECRETS.update(self._secrets)
        self._services.append(plugin)

    def secrets(self) -> list[str]:
        return list(self._secrets)

    def send_message(self, msg: str) -> None:
        import apprise

        title, *lines = msg.strip().splitlines() or [""]
        kind = apprise.NotifyType.FAILURE if " failed" in title else apprise.NotifyType.INFO
        deadline, failures = time.monotonic() + self.max_total_seconds, []
        for plugin in self._services:
            # Markdown where it is the service's format (Slack); elsewhere text (Apprise: HTML).
            rich = _markdown(lines) if plugin.resolve_format(None) == "markdown" else None
            body = rich or "\n".join(lines)
            result = apprise.Apprise([plugin], asset=plugin.asset).notify(
                body=body or title,
                title=title if body or plugin.service_name == "E-Mail" else "",  # the subject
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

    _service, _hint = "Slack", "webhook_url must look like https://hooks.slack.com/services/T/B/X"

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
    """An e-mail per event over SMTP, its subject ``subject_prefix`` and the headline.
    ``security``: ``"starttls"`` (port 587), ``"ssl"`` (465) or ``"none"`` (25); certificates
    are checked against the system's CAs (``SSL_CERT_FILE`` names another bundle)."""

    _service, _hint = "E-Mail", "security must be 'starttls', 'ssl' or 'none', sender an address"

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
        **kw: Any,
    ) -> None:
        to = [to] if isinstance(to, str) else list(to)
        if not to or any("\n" in a or "," in a for a in [*to, sender]):
            raise ValueError("EmailNotifier: give at least one address, each in its own string")
        if password and not username:
            raise ValueError("EmailNotifier: password given without username")
        self.subject_prefix = subject_prefix
        mode = {"none": "insecure"}.get(security, security)  # Apprise's names
        args = {"from": sender, "to": ",".join(to), "smtp": host, "port": port, "mode": mode}
        args |= {"user": username, "pass": password}
        query = urlencode({k: v for k, v in args.items() if v}, quote_via=quote)
        super().__init__(f"mailto://{host}?{query}", **kw)

    def send_message(self, msg: str) -> None:
        super().send_message(f"{self.subject_prefix} {msg.lstrip()}".strip())


class DesktopNotifier(AppriseNotifier):
    """A pop-up where the job driver runs: D-Bus or GLib (dbus-python or PyGObject), macOS
    (terminal-notifier), Windows (pywin32); where none is available: a warning, then silence."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        platforms = {"darwin": ["macosx://"], "win32": ["windows://"]}
        for url in platforms.get(sys.platform, ["dbus://", "glib://", "gnome://"]):
            with contextlib.suppress(ValueError):
                return self._add(url)
        logger.warning("DesktopNotifier: no desktop notification service is available here")
