"""Real servers on 127.0.0.1 for the notifier tests: HTTP(S) (Slack/Telegram/JSON webhooks), a
silent TCP listener, and SMTP (plain, with login, STARTTLS, implicit TLS) on ephemeral ports.

Apprise posts to the real Slack and Telegram hosts; ``point_services`` moves the base URL of its
Slack and Telegram plugins onto a local server, so the real plugins run end to end."""

from __future__ import annotations

import contextlib
import datetime
import html
import ipaddress
import json
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.services import free_port

_PROXY_VARS = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours proxy variables; test traffic must go straight to 127.0.0.1."""
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apprise spaces two messages to one service (1.2 s Slack, 5.5 s e-mail); the tests send
    many in a row, so the wait is lifted (a notifier's own time budget is tested apart)."""
    from apprise.plugins.email import NotifyEmail
    from apprise.plugins.slack import NotifySlack

    for plugin in (NotifyEmail, NotifySlack):
        monkeypatch.setattr(plugin, "request_rate_per_sec", 0)


# -- HTTP -------------------------------------------------------------------------------------


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]


class RecordingHTTPServer:
    """Answers POSTs from a queue of replies (then 200 "ok") and records each request.

    Tests reach it through the ``http_server`` fixture: ``url``, ``requests`` (method, path,
    headers, json), ``texts``, ``delivered`` (2xx answers) and ``queue(...)``.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[_Reply] = []
        self.delivered = 0  # requests answered with 2xx
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw
                with outer._lock:
                    outer.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": dict(self.headers),
                            "json": body,
                        }
                    )
                    reply = outer.replies.pop(0) if outer.replies else _Reply(200, b"ok", {})
                    if 200 <= reply.status < 300:
                        outer.delivered += 1
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def queue(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests with this reply."""
        with self._lock:
            self.replies.extend([_Reply(status, body, dict(headers or {}))] * times)

    @property
    def texts(self) -> list[str]:
        """Each request's message as the notifier's plain text (headline, then the lines)."""
        return [message_of(r["json"]) for r in self.requests]


def _plain(markdown: str) -> list[str]:
    # "- *key:* `value`" (Slack mrkdwn) back to "key: value"; escaped text back to text.
    lines = []
    for line in markdown.splitlines():
        m = re.fullmatch(r"- \*{1,2}(.+?):\*{1,2} `(.*)`", line)
        lines.append(f"{m[1]}: {m[2]}" if m else re.sub(r"\\(.)", r"\1", line.removeprefix("- ")))
    return lines


def message_of(payload: Any) -> str:
    """The plain text of a Slack, Telegram or Apprise JSON payload."""
    if "attachments" in payload and "mrkdwn" in payload:  # Slack
        (att,) = payload["attachments"]
        return "\n".join([att["title"], *_plain(att["text"])]) if att["title"] else att["text"]
    if "chat_id" in payload:  # Telegram, HTML: <b>title</b> then the text
        text = payload["text"].replace("\r\n", "\n")
        m = re.fullmatch(r"<b>(.*?)\n?</b>\n?(.*)", text, re.S)
        parts = [m[1], m[2]] if m else [text]
        return html.unescape("\n".join(p for p in parts if p).rstrip("\n"))
    lines = [payload["title"], payload["message"]] if payload["title"] else [payload["message"]]
    return "\n".join(lines)


@contextlib.contextmanager
def _serving(server: RecordingHTTPServer) -> Iterator[RecordingHTTPServer]:
    server._thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        server._thread.join(5)


@pytest.fixture
def http_server() -> Iterator[RecordingHTTPServer]:
    with _serving(RecordingHTTPServer()) as server:
        yield server


@pytest.fixture
def https_server(certs: Certs) -> Iterator[RecordingHTTPServer]:
    """HTTPS with a certificate of the throwaway CA (which nothing trusts unless told)."""
    with _serving(RecordingHTTPServer(certs.server_context())) as server:
        yield server


@pytest.fixture
def point_services(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``point_services(url)``: Apprise's Slack and Telegram plugins post to ``url`` instead."""
    from apprise.plugins.slack import NotifySlack
    from apprise.plugins.telegram import NotifyTelegram

    def point(url: str) -> None:
        monkeypatch.setattr(NotifySlack, "webhook_url", url + "/services")
        monkeypatch.setattr(NotifyTelegram, "notify_url", url + "/bot")

    return point


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers; yields its http URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept_forever() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    return free_port()


# -- TLS --------------------------------------------------------------------------------------


@dataclass
class Certs:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_pem, self.key_pem)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """Verifies the server (hostname included) against the test CA only."""
        return ssl.create_default_context(cafile=str(self.ca_pem))


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ml-experiment test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("certs")
    paths = Certs(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    paths.ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


# -- SMTP -------------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None


class SMTPServer:
    """An aiosmtpd server on 127.0.0.1 that keeps every message it accepts.

    It accepts the login ``user`` / ``password`` (attributes of the server object).
    """

    user = "bot"
    password = "s3cret-pa55word"

    def __init__(self, **controller_kwargs: Any) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.received: list[Received] = []
        self.auth_attempts: list[str] = []  # the mechanism of each AUTH command
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = message_from_bytes(envelope.original_content, policy=policy.default)
                login = session.auth_data if session.authenticated else None
                outer.received.append(
                    Received(envelope.mail_from, list(envelope.rcpt_tos), message, login)
                )
                return "250 OK"

        def authenticator(
            server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
        ) -> AuthResult:
            if not isinstance(auth_data, LoginPassword):
                return AuthResult(success=False, handled=False)
            outer.auth_attempts.append(mechanism)
            ok = (auth_data.login, auth_data.password) == (
                outer.user.encode(),
                outer.password.encode(),
            )
            # auth_data becomes session.auth_data: the login name, for handle_DATA to record.
            return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode())

        self.port = free_port()  # aiosmtpd cannot report an ephemeral port: pick one
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="localhost",
            authenticator=authenticator,
            **controller_kwargs,
        )


@contextlib.contextmanager
def _running(server: SMTPServer) -> Iterator[SMTPServer]:
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """Plain SMTP; AUTH allowed without TLS (login is checked by the authenticator)."""
    with _running(SMTPServer(auth_require_tls=False)) as server:
        yield server


@pytest.fixture
def smtp_starttls_server(certs: Certs) -> Iterator[SMTPServer]:
    """SMTP that insists on STARTTLS before anything else, AUTH only over TLS."""
    server = SMTPServer(tls_context=certs.server_context(), require_starttls=True)
    with _running(server):
        yield server


@pytest.fixture
def smtps_server(certs: Certs) -> Iterator[SMTPServer]:
    """SMTP over TLS from the first byte (port-465 style)."""
    with _running(SMTPServer(ssl_context=certs.server_context())) as server:
        yield server
