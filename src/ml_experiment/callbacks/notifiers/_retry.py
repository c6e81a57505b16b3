"""Bounded retries and a JSON POST over ``urllib`` shared by the network notifiers."""

from __future__ import annotations

import http.client
import json
import logging
import math
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from ml_experiment.callbacks.notifiers._base import NotificationError, format_error

logger = logging.getLogger("ml_experiment.notifiers")

T = TypeVar("T")

_USER_AGENT = "ml-experiment-notifier"
# Answers that mean the credentials or the destination are wrong: retrying cannot help.
_PERMANENT_HTTP_CODES = frozenset({401, 403, 404, 410})


class TransientError(Exception):
    """One attempt failed in a way worth retrying (connection, timeout, HTTP 5xx or 429)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a notifier tries before it gives up.

    Args:
        timeout: Seconds one attempt may block on the network (per socket operation).
        retries: Attempts after the first one (so at most ``retries + 1`` attempts).
        backoff: Sleep ``backoff * 2**n`` seconds before retry ``n`` (0-based).
        max_backoff: Cap on any one sleep, ``Retry-After`` included.
        max_total_seconds: Budget for the whole send; no attempt starts or sleeps past it,
            and each attempt's timeout is cut to what is left of it.
    """

    timeout: float = 5.0
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_total_seconds: float = 15.0

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(f"RetryPolicy: {name} must be {rule}, got {getattr(self, name)!r}")

        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise bad("retries", "an integer >= 0")
        for name in ("timeout", "max_total_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise bad(name, "a finite number > 0")
        for name in ("backoff", "max_backoff"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise bad(name, "a finite number >= 0")

    def delay(self, retry_index: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry ``retry_index`` (0-based)."""
        wanted = retry_after if retry_after is not None else self.backoff * 2**retry_index
        return max(0.0, min(wanted, self.max_backoff))


def run_with_retry(attempt: Callable[[float], T], policy: RetryPolicy, *, label: str) -> T:
    """Call ``attempt(timeout)`` until it succeeds, retrying :class:`TransientError` only.

    Raises:
        NotificationError: a non-retryable failure, or the retries or the time budget ran out.
    """
    start = time.monotonic()
    deadline = start + policy.max_total_seconds
    last: TransientError | None = None
    attempts = 0
    for index in range(policy.retries + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        attempts += 1
        try:
            return attempt(min(policy.timeout, remaining))
        except TransientError as exc:
            last = exc
        if index == policy.retries:
            break
        delay = policy.delay(index, last.retry_after)
        if time.monotonic() + delay >= deadline:
            break
        logger.info(
            "%s: attempt %d of %d failed (%s); retrying in %.2fs",
            label,
            attempts,
            policy.retries + 1,
            last,
            delay,
        )
        time.sleep(delay)
    elapsed = time.monotonic() - start
    raise NotificationError(
        f"{label}: gave up after {attempts} attempt(s) in {elapsed:.1f}s "
        f"(budget {policy.max_total_seconds:g}s); last error: {last}"
    )


def check_http_url(url: Any, owner: str, field: str) -> str:
    """``url`` if it is an http(s) URL with a host; the error never echoes the (secret) URL."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{owner}: {field} must be a non-empty http(s) URL")
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ValueError(f"{owner}: {field} must be an http(s) URL with a host (got {shown})")
    return url.strip()


def redact_url(url: str) -> str:
    """Only the scheme and host (and port) of ``url``: paths and queries carry tokens."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<url>"
    return f"{parts.scheme}://{host}{port}"


def parse_retry_after(value: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # Following a redirect would turn the POST into a GET (message lost, yet "200") or send
    # the payload to another host; report the 3xx instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _snippet(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text[:200]


def _retry_after_from_body(body: bytes) -> float | None:
    # Telegram puts it in the JSON answer: {"parameters": {"retry_after": 5}}.
    try:
        data = json.loads(body)
        return parse_retry_after(data["parameters"]["retry_after"])
    except (ValueError, KeyError, TypeError):
        return None


def post_json(url: str, payload: dict[str, Any], *, timeout: float) -> bytes:
    """POST ``payload`` as JSON; return the body of a 2xx answer.

    Raises:
        TransientError: connection failure, timeout, HTTP 5xx or 429.
        NotificationError: any other HTTP error (not retried), or an untrusted certificate.
    """
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": _USER_AGENT},
    )
    opener = urllib.request.build_opener(_NoRedirect)  # per call: honours current proxy env
    try:
        with opener.open(request, timeout=timeout) as response:
            return bytes(response.read(65536))
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(2048) if exc.fp is not None else b""
        except Exception:
            body = b""
        finally:
            exc.close()
        detail = f"HTTP {exc.code}" + (f": {_snippet(body)}" if body.strip() else "")
        if exc.code == 429 or exc.code >= 500:
            header = exc.headers.get("Retry-After") if exc.headers is not None else None
            retry_after = parse_retry_after(header)
            if retry_after is None:
                retry_after = _retry_after_from_body(body)
            raise TransientError(detail, retry_after=retry_after) from None
        raise NotificationError(
            f"{detail} (not retried)", permanent=exc.code in _PERMANENT_HTTP_CODES
        ) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise NotificationError(
                f"TLS certificate not trusted: {reason.verify_message}", permanent=True
            ) from None
        text = format_error(reason) if isinstance(reason, BaseException) else str(reason)
        raise TransientError(text or "connection failed") from None
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, bad status lines
        raise TransientError(format_error(exc) or type(exc).__name__) from None
