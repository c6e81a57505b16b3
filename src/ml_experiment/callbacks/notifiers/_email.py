"""``EmailNotifier``: one short email per event over SMTP (STARTTLS, implicit TLS or plain)."""

from __future__ import annotations

import email.utils
import logging
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any, Literal, get_args

from ml_experiment.callbacks.notifiers._base import NotificationError, NotifierBase, format_error
from ml_experiment.callbacks.notifiers._retry import RetryPolicy, TransientError, run_with_retry

logger = logging.getLogger("ml_experiment.notifiers")

Security = Literal["starttls", "ssl", "none"]
_DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "ssl": 465, "none": 25}
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def _check_address(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\n" in value or "\r" in value:
        raise ValueError(f"EmailNotifier: {field} must be one email address per string")
    return value.strip()


def _smtp_failure(exc: Exception) -> Exception:
    """Map an smtplib/socket error to TransientError (retry) or NotificationError (stop)."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return NotificationError(f"SMTP login refused ({exc.smtp_code})", permanent=True)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return NotificationError(f"SMTP server does not support it: {exc}", permanent=True)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        text = f"SMTP recipients refused ({', '.join(map(str, codes))})"
        if codes and all(400 <= c < 500 for c in codes):
            return TransientError(text)
        return NotificationError(text)
    if isinstance(exc, smtplib.SMTPResponseException):
        message = exc.smtp_error
        if isinstance(message, bytes):
            message = message.decode("utf-8", errors="replace")
        text = f"SMTP {exc.smtp_code}: {' '.join(str(message).split())[:200]}"
        if 400 <= exc.smtp_code < 500 or exc.smtp_code < 0:
            return TransientError(text)
        return NotificationError(text)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransientError(f"SMTP server disconnected: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return NotificationError(
            f"TLS certificate not trusted: {exc.verify_message}", permanent=True
        )
    if isinstance(exc, OSError):  # refused, reset, timed out, DNS, TLS handshake
        return TransientError(format_error(exc) or type(exc).__name__)
    return NotificationError(format_error(exc) or type(exc).__name__)


class EmailNotifier(NotifierBase):
    """Send each event as an email; the subject is the message's first line.

    Args:
        to: One address or a list of addresses.
        sender: The From address.
        host: The SMTP server.
        port: Defaults to 587 for ``starttls``, 465 for ``ssl``, 25 for ``none``.
        security: ``"starttls"`` (upgrade a plain connection; refused if the server cannot),
            ``"ssl"`` (TLS from the first byte) or ``"none"``.
        username: Log in with this user (only when given).
        password: The password (a secret: never shown in ``repr`` or logs).
        subject_prefix: Put before the subject.
        ssl_context: The TLS context; default: the system's trusted CAs, hostname checked.
        timeout, retries, backoff, max_backoff, max_total_seconds: as for ``SlackNotifier``;
            temporary SMTP answers (4xx) are retried, permanent ones (5xx) are not.
        send_message_for_trials: Also report each group trial.
    """

    def __init__(
        self,
        to: str | Sequence[str],
        *,
        sender: str,
        host: str = "localhost",
        port: int | None = None,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        subject_prefix: str = "[ml-experiment]",
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_total_seconds: float = 30.0,
        send_message_for_trials: bool = False,
    ) -> None:
        super().__init__(send_message_for_trials=send_message_for_trials)
        recipients = [to] if isinstance(to, str) else list(to)
        if not recipients:
            raise ValueError("EmailNotifier: to must name at least one address")
        self.to = [_check_address(a, "to") for a in recipients]
        self.sender = _check_address(sender, "sender")
        if security not in _DEFAULT_PORTS:
            allowed = ", ".join(get_args(Security))
            raise ValueError(f"EmailNotifier: unknown security {security!r}. Available: {allowed}.")
        self.security: Security = security
        if not isinstance(host, str) or not host.strip():
            raise ValueError("EmailNotifier: host must be a non-empty host name")
        self.host = host.strip()
        if port is None:
            port = _DEFAULT_PORTS[security]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"EmailNotifier: port must be an integer in 1..65535, got {port!r}")
        self.port = port
        if password is not None and not username:
            raise ValueError("EmailNotifier: password given without username")
        self.username = username
        self._password = password
        self.subject_prefix = subject_prefix
        self._ssl_context = ssl_context
        self.retry_policy = RetryPolicy(timeout, retries, backoff, max_backoff, max_total_seconds)
        if username and security == "none" and self.host not in _LOOPBACK:
            logger.warning(
                "EmailNotifier: security='none' sends the SMTP password to %s unencrypted;"
                " use security='starttls' or 'ssl'",
                self.host,
            )

    def build_email(self, msg: str) -> EmailMessage:
        """The email for ``msg``: subject = prefix + first line, body = the whole message."""
        first_line = msg.strip().splitlines()[0] if msg.strip() else ""
        subject = " ".join(f"{self.subject_prefix} {first_line}".split())
        email_msg = EmailMessage()
        email_msg["Subject"] = subject[:200]
        email_msg["From"] = self.sender
        email_msg["To"] = ", ".join(self.to)
        email_msg["Date"] = email.utils.formatdate(localtime=True)
        # An explicit domain avoids make_msgid's reverse DNS lookup of this host.
        domain = email.utils.parseaddr(self.sender)[1].rpartition("@")[2] or "ml-experiment"
        email_msg["Message-ID"] = email.utils.make_msgid(domain=domain)
        email_msg.set_content(msg.rstrip("\n") + "\n")
        return email_msg

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _send_once(self, email_msg: EmailMessage, timeout: float) -> None:
        try:
            smtp: smtplib.SMTP
            if self.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=timeout, context=self._context()
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=self._context())
                if self.username:
                    smtp.login(self.username, self._password or "")
                envelope_from = email.utils.parseaddr(self.sender)[1] or self.sender
                smtp.send_message(email_msg, from_addr=envelope_from, to_addrs=self.to)
        except Exception as exc:
            raise _smtp_failure(exc) from None

    def send_message(self, msg: str) -> None:
        email_msg = self.build_email(msg)
        run_with_retry(
            lambda timeout: self._send_once(email_msg, timeout),
            self.retry_policy,
            label=f"EmailNotifier SMTP {self.host}:{self.port}",
        )

    def secrets(self) -> list[str]:
        return [self._password] if self._password else []

    def _repr_fields(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "sender": self.sender,
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "username": self.username,
        }
