"""Notifiers against real servers on 127.0.0.1 (HTTP, SMTP) and a fake ``notify-send``."""

from __future__ import annotations

import enum
import logging
import os
import stat
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ml_experiment.callbacks import Callback
from ml_experiment.callbacks.notifiers import (
    DesktopNotifier,
    EmailNotifier,
    NotificationError,
    NotifierBase,
    RetryPolicy,
    SlackNotifier,
    TelegramNotifier,
    _desktop,
    format_duration,
)

pytestmark = pytest.mark.timeout(60)

LOGGER = "ml_experiment.notifiers"
FAST = {"timeout": 2.0, "backoff": 0.01, "max_backoff": 0.05, "max_total_seconds": 5.0}
TOKEN = "123456:AAH-very-secret-token"
WEBHOOK_PATH = "/services/T0001/B0002/XXXXsecretXXXX"


class TrialState(enum.Enum):  # the shape of optuna.trial.TrialState, without importing optuna
    RUNNING = 0
    COMPLETE = 1
    PRUNED = 2
    FAIL = 3


def experiment() -> SimpleNamespace:
    return SimpleNamespace(name="svm", kind="experiment", metric="accuracy")


def group() -> SimpleNamespace:
    return SimpleNamespace(name="svm", kind="group", metric=None)


def trial(number: int, state: Any = "COMPLETE", **params: Any) -> SimpleNamespace:
    return SimpleNamespace(number=number, params=params, state=state)


def run_group(notifier: Callback, *, fail: bool = False) -> None:
    """Drive a group's hooks: 3 trials (finished, pruned, failed), then the end."""
    cfg = group()
    notifier.on_job_start(cfg)
    notifier.on_trial_start(cfg, trial(0, "RUNNING", C=1.0), {"C": 1.0, "kernel": "rbf"})
    notifier.on_trial_end(
        cfg, trial(0, TrialState.COMPLETE, C=1.0, kernel="rbf"), 0.91, duration=2.1
    )
    notifier.on_trial_start(cfg, trial(1, "RUNNING"), {"C": 10.0, "kernel": "linear"})
    notifier.on_trial_end(cfg, trial(1, TrialState.PRUNED, C=10.0), None, duration=0.4)
    notifier.on_trial_start(cfg, trial(2, "RUNNING"), {"C": 0.1, "kernel": "rbf"})
    notifier.on_trial_end(cfg, trial(2, "FAIL", C=0.1), None, ValueError("boom\ntraceback..."))
    if fail:
        notifier.on_job_end(cfg, exception=RuntimeError("worker died"), duration=3.25)
    else:
        notifier.on_job_end(
            cfg, duration=65.2, best_value=0.91, best_params={"C": 1.0, "kernel": "rbf"}
        )


class Recorder(NotifierBase):
    def __init__(self, fail_with: Exception | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[str] = []
        self.fail_with = fail_with

    def send_message(self, msg: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(msg)


# -- message building -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.53, "0.5s"),
        (59.94, "59.9s"),
        (65.2, "1m 05s"),
        (3725, "1h 02m 05s"),
        (90061, "1d 1h 01m"),
        (None, None),
        (-1, None),
        (float("nan"), None),
        ("soon", None),
    ],
)
def test_format_duration(seconds: Any, text: str | None) -> None:
    assert format_duration(seconds) == text


def test_group_messages() -> None:
    rec = Recorder(send_message_for_trials=True)
    run_group(rec)
    assert rec.sent == [
        "group 'svm' started",
        "group 'svm': trial 0 started\nparams: C=1, kernel='rbf'",
        "group 'svm': trial 0 finished in 2.1s\nvalue: 0.91\nparams: C=1, kernel='rbf'",
        "group 'svm': trial 1 started\nparams: C=10, kernel='linear'",
        "group 'svm': trial 1 pruned after 0.4s\nparams: C=10",
        "group 'svm': trial 2 started\nparams: C=0.1, kernel='rbf'",
        "group 'svm': trial 2 failed\nparams: C=0.1\nerror: ValueError: boom",
        "group 'svm' finished in 1m 05s\nbest value: 0.91\nbest params: C=1, kernel='rbf'",
    ]


def test_failure_message_has_error_type_and_text() -> None:
    rec = Recorder()
    run_group(rec, fail=True)
    assert rec.sent[-1] == "group 'svm' failed after 3.2s\nerror: RuntimeError: worker died"


def test_multi_objective_and_experiment_end() -> None:
    rec = Recorder()
    rec.on_job_end(group(), duration=1.0, best_value=[0.9, 12.5], best_params={"lr": 1e-3})
    rec.on_job_end(experiment(), metrics={"accuracy": 0.93, "loss": 0.1234567}, run_id="abc")
    assert (
        rec.sent[0]
        == "group 'svm' finished in 1.0s\nbest value: [0.9, 12.5]\nbest params: lr=0.001"
    )
    assert (
        rec.sent[1] == "experiment 'svm' finished\nmetrics: accuracy=0.93, loss=0.123457\nrun: abc"
    )


def test_missing_fields_do_not_break_messages() -> None:
    rec = Recorder(send_message_for_trials=True)
    bare = object()
    rec.on_job_start(bare)
    rec.on_trial_start(bare, bare, None)  # type: ignore[arg-type]
    rec.on_trial_end(bare, bare, None, "worker lost\nmore")
    rec.on_job_end(bare, exception=KeyError())
    assert rec.sent == [
        "job started",
        "job: trial ? started",
        "job: trial ? failed\nerror: worker lost",
        "job failed\nerror: KeyError",
    ]


def test_no_trial_messages_by_default() -> None:
    rec = Recorder()
    run_group(rec)
    assert len(rec.sent) == 2


def test_send_failure_is_logged_redacted_and_disables_after_three(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Leaky(Recorder):
        def secrets(self) -> list[str]:
            return ["hunter2"]

    rec = Leaky(fail_with=RuntimeError("auth hunter2 rejected"), send_message_for_trials=True)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run_group(rec)  # 8 messages; only the first 3 are tried
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert sum("notification not sent" in r.getMessage() for r in warnings) == 3
    assert "RuntimeError: auth *** rejected" in caplog.text
    assert "silent until the next job starts" in caplog.text
    assert "hunter2" not in caplog.text
    rec.fail_with = None
    rec.on_job_start(group())  # a new job tries again
    assert rec.sent == ["group 'svm' started"]


def test_broken_message_builder_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Recorder):
        def job_start_message(self, config: Any, **kwargs: Any) -> str | None:
            raise ZeroDivisionError("oops")

    rec = Broken()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        rec.on_job_start(group())
    assert rec.sent == []
    assert "could not build a message: ZeroDivisionError: oops" in caplog.text


def test_subclass_without_super_init_works() -> None:
    class Minimal(NotifierBase):
        def __init__(self) -> None:
            self.sent: list[str] = []

        def send_message(self, msg: str) -> None:
            self.sent.append(msg)

    n = Minimal()
    n.on_job_start(group())
    n.on_trial_start(group(), trial(0), {})
    assert n.sent == ["group 'svm' started"]
    assert repr(n) == "Minimal()"


# -- Slack and Telegram -----------------------------------------------------------------------


def test_slack_experiment_lifecycle(http_server: Any) -> None:
    slack = SlackNotifier(http_server.url + WEBHOOK_PATH, channel="#ml", username="bot")
    slack.on_job_start(experiment())
    slack.on_info_logged(experiment(), {"accuracy": 0.9}, {})  # sends nothing
    slack.on_job_end(experiment(), duration=65.2, metrics={"accuracy": 0.93}, run_id="r1")
    assert [(r["method"], r["path"]) for r in http_server.requests] == [("POST", WEBHOOK_PATH)] * 2
    first, last = (r["json"] for r in http_server.requests)
    assert first == {"text": "experiment 'svm' started", "channel": "#ml", "username": "bot"}
    assert last["text"] == "experiment 'svm' finished in 1m 05s\nmetrics: accuracy=0.93\nrun: r1"
    assert http_server.requests[0]["headers"]["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("for_trials", [True, False])
def test_slack_group_lifecycle(http_server: Any, for_trials: bool) -> None:
    slack = SlackNotifier(http_server.url + WEBHOOK_PATH, send_message_for_trials=for_trials)
    run_group(slack)
    texts = http_server.texts
    assert all(set(r["json"]) == {"text"} for r in http_server.requests)  # None fields omitted
    assert texts[0] == "group 'svm' started"
    assert (
        texts[-1]
        == "group 'svm' finished in 1m 05s\nbest value: 0.91\nbest params: C=1, kernel='rbf'"
    )
    trial_texts = [t for t in texts if ": trial " in t]
    if for_trials:
        assert len(texts) == 8
        assert [t.splitlines()[0] for t in trial_texts] == [
            "group 'svm': trial 0 started",
            "group 'svm': trial 0 finished in 2.1s",
            "group 'svm': trial 1 started",
            "group 'svm': trial 1 pruned after 0.4s",
            "group 'svm': trial 2 started",
            "group 'svm': trial 2 failed",
        ]
        assert "error: ValueError: boom" in trial_texts[-1]
    else:
        assert len(texts) == 2
        assert trial_texts == []


def test_slack_group_failure(http_server: Any) -> None:
    run_group(SlackNotifier(http_server.url + WEBHOOK_PATH), fail=True)
    assert http_server.texts[-1] == (
        "group 'svm' failed after 3.2s\nerror: RuntimeError: worker died"
    )


def test_telegram_lifecycle(http_server: Any) -> None:
    http_server.queue(200, b'{"ok": true, "result": {}}')
    tg = TelegramNotifier(TOKEN, chat_id=42, api_url=http_server.url + "/", **FAST)
    run_group(tg, fail=True)
    assert [(r["method"], r["path"]) for r in http_server.requests] == [
        ("POST", f"/bot{TOKEN}/sendMessage")
    ] * 2
    assert http_server.requests[0]["json"] == {"chat_id": 42, "text": "group 'svm' started"}
    assert "RuntimeError: worker died" in http_server.requests[1]["json"]["text"]


def test_telegram_long_message_is_truncated(http_server: Any) -> None:
    TelegramNotifier(TOKEN, "@chan", api_url=http_server.url).send_message("x" * 10_000)
    (request,) = http_server.requests
    assert request["json"]["chat_id"] == "@chan"
    assert len(request["json"]["text"]) <= 4096
    assert request["json"]["text"].endswith("(truncated)")


# -- retries and budgets ----------------------------------------------------------------------


def test_5xx_is_retried_until_it_arrives_once(
    http_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    http_server.queue(500, b"oops")
    http_server.queue(503, b"busy")
    slack = SlackNotifier(http_server.url + WEBHOOK_PATH, retries=3, **FAST)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        slack.on_job_start(experiment())
    assert len(http_server.requests) == 3
    assert http_server.delivered == 1
    assert "attempt 1 of 4 failed (HTTP 500: oops)" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_gives_up_after_the_retries(http_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    http_server.queue(502, times=10)
    slack = SlackNotifier(http_server.url + WEBHOOK_PATH, **{**FAST, "retries": 2})
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        slack.on_job_start(experiment())
    assert len(http_server.requests) == 3
    assert http_server.delivered == 0
    assert "gave up after 3 attempt(s)" in caplog.text
    assert "http://127.0.0.1" in caplog.text  # where it tried, without the path


def test_400_is_not_retried(http_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    http_server.queue(400, b"invalid_payload")
    slack = SlackNotifier(http_server.url + WEBHOOK_PATH, **FAST)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        slack.on_job_start(experiment())
        slack.on_job_end(experiment())  # 400 is not permanent: the next message is tried
    assert len(http_server.requests) == 2
    assert "HTTP 400: invalid_payload (not retried)" in caplog.text


def test_permanent_4xx_silences_the_notifier_until_next_job(
    http_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    http_server.queue(404, b"no_service")
    slack = SlackNotifier(http_server.url + WEBHOOK_PATH, send_message_for_trials=True, **FAST)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run_group(slack)
    assert len(http_server.requests) == 1
    assert "after a permanent error" in caplog.text


def test_redirect_is_not_followed(http_server: Any) -> None:
    http_server.queue(302, headers={"Location": http_server.url + "/elsewhere"})
    slack = SlackNotifier(http_server.url + WEBHOOK_PATH, **FAST)
    with pytest.raises(NotificationError, match="HTTP 302"):
        slack.send_message("hello")
    assert [r["path"] for r in http_server.requests] == [WEBHOOK_PATH]


def test_429_honours_retry_after(http_server: Any) -> None:
    http_server.queue(429, b"slow down", {"Retry-After": "0.3"})
    slack = SlackNotifier(http_server.url + WEBHOOK_PATH, **{**FAST, "max_backoff": 1.0})
    start = time.monotonic()
    slack.send_message("hello")
    assert time.monotonic() - start >= 0.3
    assert http_server.delivered == 1


def test_retry_after_is_capped(http_server: Any) -> None:
    http_server.queue(429, b'{"parameters": {"retry_after": 3600}}')
    tg = TelegramNotifier(TOKEN, 1, api_url=http_server.url, **{**FAST, "max_backoff": 0.1})
    start = time.monotonic()
    tg.send_message("hello")
    assert time.monotonic() - start < 1.0
    assert http_server.delivered == 1


def test_silent_server_costs_at_most_the_budget(
    silent_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    budget = 1.2
    slack = SlackNotifier(
        silent_server + WEBHOOK_PATH,
        timeout=0.5,
        retries=10,
        backoff=0.05,
        max_total_seconds=budget,
    )
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        slack.on_job_start(experiment())  # must not raise
    elapsed = time.monotonic() - start
    assert elapsed < budget + 0.5
    assert "gave up after" in caplog.text
    assert "timed out" in caplog.text


def test_connection_refused_is_retried_then_logged(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    tg = TelegramNotifier(TOKEN, 1, api_url=f"http://127.0.0.1:{closed_port}", **FAST)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        tg.on_job_end(group(), exception=ValueError("x"))
    assert "gave up after 4 attempt(s)" in caplog.text
    assert "Connection refused" in caplog.text


def test_retry_policy_validation_and_delays() -> None:
    policy = RetryPolicy(backoff=0.5, max_backoff=3.0)
    assert [policy.delay(i) for i in range(4)] == [0.5, 1.0, 2.0, 3.0]
    assert policy.delay(0, retry_after=2.5) == 2.5
    assert policy.delay(0, retry_after=60) == 3.0
    with pytest.raises(ValueError, match="retries must be an integer >= 0"):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError, match="timeout must be a finite number > 0"):
        SlackNotifier("https://hooks.slack.com/x", timeout=0)


# -- credentials ------------------------------------------------------------------------------


def test_no_secret_in_repr_or_logs(
    http_server: Any,
    closed_port: int,
    smtp_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    http_server.queue(403, f"bad token {TOKEN}".encode())
    http_server.queue(500, WEBHOOK_PATH.encode())
    slack = SlackNotifier(http_server.url + WEBHOOK_PATH, channel="#ml", **{**FAST, "retries": 0})
    tg = TelegramNotifier(TOKEN, chat_id=7, api_url=http_server.url, **FAST)
    refused = SlackNotifier(f"http://127.0.0.1:{closed_port}{WEBHOOK_PATH}", **FAST)
    mail = EmailNotifier(
        "ops@example.org",
        sender="ml@example.org",
        host="127.0.0.1",
        port=smtp_server.port,
        security="none",
        username=smtp_server.user,
        password="wrong-" + smtp_server.password,
        **FAST,
    )
    assert repr(slack) == "SlackNotifier(channel='#ml')"
    assert repr(tg) == "TelegramNotifier(chat_id=7)"
    assert repr(mail) == (
        "EmailNotifier(to=['ops@example.org'], sender='ml@example.org', host='127.0.0.1', "
        f"port={smtp_server.port}, security='none', username='bot')"
    )
    assert slack.secrets() == [http_server.url + WEBHOOK_PATH, WEBHOOK_PATH]
    assert tg.secrets() == [TOKEN]
    assert mail.secrets() == ["wrong-" + smtp_server.password]
    assert DesktopNotifier().secrets() == []

    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for notifier in (tg, slack, refused, mail):
            notifier.on_job_start(experiment())
    secrets = [*slack.secrets(), *tg.secrets(), *refused.secrets(), *mail.secrets()]
    assert caplog.records
    for notifier in (slack, tg, refused, mail):
        assert not any(s in repr(notifier) for s in secrets)
    for secret in secrets:
        assert secret not in caplog.text
    assert "HTTP 403: bad token *** (not retried)" in caplog.text
    assert "SMTP login refused (535)" in caplog.text


def test_bad_url_error_does_not_echo_it() -> None:
    with pytest.raises(ValueError, match="got scheme 'ftp'") as info:
        SlackNotifier("ftp://hooks.example.org/services/SECRET")
    assert "SECRET" not in str(info.value)
    with pytest.raises(ValueError, match="token must look like"):
        TelegramNotifier("12/34", chat_id=1)


# -- email ------------------------------------------------------------------------------------


def test_email_plain(smtp_server: Any) -> None:
    mail = EmailNotifier(
        ["a@example.org", "b@example.org"],
        sender="ML Bot <ml@example.org>",
        host="127.0.0.1",
        port=smtp_server.port,
        security="none",
        **FAST,
    )
    assert mail.secrets() == []
    run_group(mail)
    assert len(smtp_server.received) == 2
    got = smtp_server.received[-1]
    assert got.mail_from == "ml@example.org"
    assert got.rcpt_tos == ["a@example.org", "b@example.org"]
    assert got.login is None
    assert got.message["Subject"] == "[ml-experiment] group 'svm' finished in 1m 05s"
    assert got.message["To"] == "a@example.org, b@example.org"
    assert got.message["Message-ID"].endswith("@example.org>")
    body = got.message.get_content()
    assert "best value: 0.91" in body
    assert "best params: C=1, kernel='rbf'" in body
    assert smtp_server.received[0].message["Subject"] == "[ml-experiment] group 'svm' started"


def test_email_login(smtp_server: Any) -> None:
    mail = EmailNotifier(
        "ops@example.org",
        sender="ml@example.org",
        host="127.0.0.1",
        port=smtp_server.port,
        security="none",
        username=smtp_server.user,
        password=smtp_server.password,
        subject_prefix="[svm]",
        **FAST,
    )
    mail.on_job_end(experiment(), exception=MemoryError("out of memory"), duration=7)
    (got,) = smtp_server.received
    assert got.login == smtp_server.user
    assert got.message["Subject"] == "[svm] experiment 'svm' failed after 7.0s"
    assert "error: MemoryError: out of memory" in got.message.get_content()


def test_email_wrong_password_is_not_retried(
    smtp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mail = EmailNotifier(
        "ops@example.org",
        sender="ml@example.org",
        host="127.0.0.1",
        port=smtp_server.port,
        security="none",
        username=smtp_server.user,
        password="nope",
        **FAST,
    )
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        mail.on_job_start(experiment())
        mail.on_job_end(experiment())  # silenced by the permanent error
    assert smtp_server.received == []
    # smtplib tries each advertised mechanism (PLAIN, LOGIN) once; a retry would repeat them.
    assert smtp_server.auth_attempts
    assert len(smtp_server.auth_attempts) == len(set(smtp_server.auth_attempts))
    assert "SMTP login refused (535)" in caplog.text


def test_email_starttls_with_login(smtp_starttls_server: Any, certs: Any) -> None:
    mail = EmailNotifier(
        "ops@example.org",
        sender="ml@example.org",
        host="127.0.0.1",
        port=smtp_starttls_server.port,
        security="starttls",
        username=smtp_starttls_server.user,
        password=smtp_starttls_server.password,
        ssl_context=certs.client_context(),
        **FAST,
    )
    mail.send_message("experiment 'svm' started")
    (got,) = smtp_starttls_server.received
    assert got.login == smtp_starttls_server.user
    assert got.message["Subject"] == "[ml-experiment] experiment 'svm' started"


def test_email_starttls_untrusted_certificate_is_not_retried(
    smtp_starttls_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mail = EmailNotifier(
        "ops@example.org",
        sender="ml@example.org",
        host="127.0.0.1",
        port=smtp_starttls_server.port,
        **FAST,  # default context: the system CAs, which do not know the test CA
    )
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        mail.on_job_start(experiment())
    assert smtp_starttls_server.received == []
    assert "TLS certificate not trusted" in caplog.text
    assert "gave up" not in caplog.text  # a single attempt


def test_email_starttls_refused_by_plain_server(smtp_server: Any) -> None:
    mail = EmailNotifier(
        "ops@example.org", sender="ml@example.org", host="127.0.0.1", port=smtp_server.port, **FAST
    )
    with pytest.raises(NotificationError, match="STARTTLS"):
        mail.send_message("hello")  # never falls back to plain text
    assert smtp_server.received == []


def test_email_implicit_tls(smtps_server: Any, certs: Any) -> None:
    mail = EmailNotifier(
        "ops@example.org",
        sender="ml@example.org",
        host="localhost",
        port=smtps_server.port,
        security="ssl",
        ssl_context=certs.client_context(),
        **FAST,
    )
    mail.send_message("group 'svm' finished\nbest value: 1")
    (got,) = smtps_server.received
    assert got.rcpt_tos == ["ops@example.org"]
    assert got.message["Subject"] == "[ml-experiment] group 'svm' finished"


def test_email_arguments() -> None:
    def make(**kw: Any) -> EmailNotifier:
        return EmailNotifier("a@example.org", sender="b@example.org", **kw)

    assert make().port == 587
    assert make(security="ssl").port == 465
    assert make(security="none").port == 25
    assert make(port=2525).port == 2525
    with pytest.raises(ValueError, match="Available: starttls, ssl, none"):
        make(security="tls")
    with pytest.raises(ValueError, match="password given without username"):
        make(password="x")
    with pytest.raises(ValueError, match="at least one address"):
        EmailNotifier([], sender="b@example.org")
    with pytest.raises(ValueError, match="one email address per string"):
        EmailNotifier("a@example.org\nBcc: evil@example.org", sender="b@example.org")


# -- desktop ----------------------------------------------------------------------------------


def _fake_notify_send(folder: Path, exit_code: int = 0) -> Path:
    out = folder / "args.bin"
    script = folder / "notify-send"
    script.write_text(
        f"#!/bin/sh\nprintf '%s\\0' \"$@\" > '{out}'\necho 'no dbus' >&2\nexit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX shell")
def test_desktop_notify_send(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _fake_notify_send(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_desktop, "_platform", lambda: "linux")
    n = DesktopNotifier(app_name="cosmic")
    assert repr(n) == "DesktopNotifier(app_name='cosmic')"
    n.on_job_end(group(), exception=ValueError("-rf; $(rm x) 'quoted'"), duration=1)
    args = out.read_bytes().split(b"\0")[:-1]
    assert [a.decode() for a in args] == [
        "--app-name=cosmic",
        "--",
        "group 'svm' failed after 1.0s",
        "error: ValueError: -rf; $(rm x) 'quoted'",
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX shell")
def test_desktop_command_failure_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fake_notify_send(tmp_path, exit_code=1)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_desktop, "_platform", lambda: "linux")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        DesktopNotifier().on_job_start(group())
    assert "notify-send exited with status 1: no dbus" in caplog.text


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_desktop_without_mechanism_warns_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    platform: str,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(_desktop, "_platform", lambda: platform)
    n = DesktopNotifier(send_message_for_trials=True)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run_group(n)
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "desktop notifications are off" in records[0].getMessage()


def test_desktop_osascript_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.name != "posix":
        pytest.skip("needs a POSIX shell")
    out = tmp_path / "args.bin"
    script = tmp_path / "osascript"
    script.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" > '{out}'\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_desktop, "_platform", lambda: "darwin")
    DesktopNotifier().send_message("group \"svm\" started\nparams: a='1'")
    args = [a.decode() for a in out.read_bytes().split(b"\0")[:-1]]
    assert args[-3:] == ["ml-experiment", 'group "svm" started', "params: a='1'"]
    assert args[0] == "-e" and "on run argv" in args[1]


def test_group_end_message_has_trial_counts() -> None:
    rec = Recorder()
    rec.on_job_end(
        group(),
        duration=12.0,
        best_value=0.25,
        best_params={"x": 0.5},
        counts={"complete": 7, "fail": 1, "pruned": 2},
        run_id="r1",
    )
    assert rec.sent == [
        "group 'svm' finished in 12.0s\nbest value: 0.25\nbest params: x=0.5\n"
        "trials: 7 complete, 2 pruned, 1 failed\nrun: r1"
    ]


def test_group_whose_trials_all_failed_is_reported_failed() -> None:
    rec = Recorder()
    rec.on_job_end(group(), duration=3.0, counts={"complete": 0, "fail": 3, "pruned": 0})
    assert rec.sent == [
        "group 'svm' failed after 3.0s\nerror: all 3 trials failed\n"
        "trials: 0 complete, 0 pruned, 3 failed"
    ]


def test_dispatcher_disables_a_raising_callback_and_scrubs_its_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ml_experiment.callbacks._dispatch import CallbackDispatcher

    class Leaky(Callback):
        calls = 0

        def secrets(self) -> list[str]:
            return [TOKEN]

        def on_job_start(self, config: Any, **kwargs: Any) -> None:
            self.calls += 1
            raise ConnectionError(f"POST https://api.example/bot{TOKEN}/sendMessage refused")

    leaky, rec = Leaky(), Recorder()
    dispatch = CallbackDispatcher([leaky, rec, object()])  # an object without hooks is skipped
    with caplog.at_level(logging.ERROR, logger="ml_experiment.callbacks"):
        dispatch("on_job_start", config=group())
        dispatch("on_job_start", config=group())
    assert leaky.calls == 1 and rec.sent == ["group 'svm' started"] * 2
    assert dispatch.failures == [
        "Leaky.on_job_start: ConnectionError: POST https://api.example/bot***/sendMessage refused"
    ]
    assert dispatch.secrets() == [TOKEN]
    assert "Traceback" in caplog.text and "bot***/sendMessage" in caplog.text
    assert TOKEN not in caplog.text
