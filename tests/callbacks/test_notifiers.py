"""Notifiers (on Apprise) against real servers on 127.0.0.1: HTTP(S) for Slack, Telegram and JSON
webhooks, SMTP (plain, STARTTLS, implicit TLS) for e-mail, with a throwaway CA for TLS."""

from __future__ import annotations

import enum
import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest

from ml_experiment.callbacks import Callback
from ml_experiment.callbacks.notifiers import (
    AppriseNotifier,
    DesktopNotifier,
    EmailNotifier,
    NotifierBase,
    SlackNotifier,
    TelegramNotifier,
    format_duration,
)

pytestmark = pytest.mark.timeout(60)

LOGGER = "ml_experiment.notifiers"
# Short waits (conftest lifts Apprise's rate limits: the tests send many messages in a row).
FAST = {"timeout": 2.0, "retry_wait": 0.01, "max_total_seconds": 5.0}
TOKEN = "123456:AAH-very-secret-token"
WEBHOOK_PATH = "/services/T0001/B0002/XXXXsecretXXXX"
WEBHOOK = "https://hooks.slack.com" + WEBHOOK_PATH


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
        (90061, "25h 01m 01s"),
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


# -- Slack, Telegram, JSON webhooks -----------------------------------------------------------


@pytest.fixture
def local(http_server: Any, point_services: Any) -> Any:
    """The HTTP server, with Apprise's Slack and Telegram plugins posting to it."""
    point_services(http_server.url)
    return http_server


def test_slack_experiment_lifecycle(local: Any) -> None:
    slack = SlackNotifier(WEBHOOK, channel="#ml", username="bot", **FAST)
    slack.on_job_start(experiment())
    slack.on_info_logged(experiment(), {"accuracy": 0.9}, {})  # sends nothing
    slack.on_job_end(experiment(), duration=65.2, metrics={"accuracy": 0.93}, run_id="r1")
    assert [(r["method"], r["path"]) for r in local.requests] == [("POST", WEBHOOK_PATH)] * 2
    first, last = (r["json"] for r in local.requests)
    assert (first["channel"], first["username"]) == ("#ml", "bot")
    assert local.texts == [
        "experiment 'svm' started",
        "experiment 'svm' finished in 1m 05s\nmetrics: accuracy=0.93\nrun: r1",
    ]
    # Slack's own markup: the headline as the title, each field a bullet, values as code.
    (att,) = last["attachments"]
    assert att["title"] == "experiment 'svm' finished in 1m 05s"
    assert att["text"] == "- *metrics:* `accuracy=0.93`\n- *run:* `r1`"
    assert local.requests[0]["headers"]["Content-Type"].startswith("application/json")


def test_markup_characters_stay_text(local: Any) -> None:
    slack = SlackNotifier(WEBHOOK, **FAST)
    cfg = SimpleNamespace(name="my_job*v2", kind="experiment")
    slack.on_job_start(cfg)
    slack.on_job_end(cfg, exception=ValueError("bad `x` <y> & *z*"))
    slack.send_message("one\nplain line\nkey: value")  # not all "key: value": text
    assert local.requests[-1]["json"]["attachments"][0]["text"] == "plain line\nkey: value"
    start, end, _ = (r["json"] for r in local.requests)
    assert start["mrkdwn"] is False  # a headline alone goes as text
    assert start["attachments"][0]["text"] == "experiment 'my_job*v2' started"
    assert end["attachments"][0]["title"] == "experiment 'my_job*v2' failed"
    assert end["attachments"][0]["text"] == "- *error:* `ValueError: bad 'x' &lt;y&gt; &amp; *z*`"


@pytest.mark.parametrize("for_trials", [True, False])
def test_slack_group_lifecycle(local: Any, for_trials: bool) -> None:
    run_group(SlackNotifier(WEBHOOK, send_message_for_trials=for_trials, **FAST))
    texts = local.texts
    assert all("channel" not in r["json"] for r in local.requests)
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


def test_slack_group_failure(local: Any) -> None:
    run_group(SlackNotifier(WEBHOOK, **FAST), fail=True)
    assert local.texts[-1] == "group 'svm' failed after 3.2s\nerror: RuntimeError: worker died"
    assert (
        local.requests[-1]["json"]["attachments"][0]["color"]
        != (local.requests[0]["json"]["attachments"][0]["color"])
    )  # a failure is coloured as one


def test_telegram_lifecycle(local: Any) -> None:
    tg = TelegramNotifier(TOKEN, chat_id=42, **FAST)
    run_group(tg, fail=True)
    assert [(r["method"], r["path"]) for r in local.requests] == [
        ("POST", f"/bot{TOKEN}/sendMessage")
    ] * 2
    start, end = (r["json"] for r in local.requests)
    assert (start["chat_id"], start["parse_mode"]) == (42, "HTML")
    assert local.texts == [
        "group 'svm' started",
        "group 'svm' failed after 3.2s\nerror: RuntimeError: worker died",
    ]
    assert end["text"].startswith("<b>group 'svm' failed after 3.2s")


def test_telegram_long_message_is_truncated(local: Any) -> None:
    TelegramNotifier(TOKEN, "@chan", **FAST).send_message("x" * 10_000)
    (request,) = local.requests
    assert request["json"]["chat_id"] == "@chan"
    assert 1000 < len(request["json"]["text"]) <= 4096


def test_apprise_notifier_json_webhooks_one_down(
    http_server: Any, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    host = http_server.url.removeprefix("http://")
    n = AppriseNotifier(
        f"json://127.0.0.1:{closed_port}/hook", f"json://{host}/hook/SECRET1234", **FAST
    )
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        n.on_job_end(experiment(), metrics={"accuracy": 0.9})
    (request,) = http_server.requests  # the live one still got it
    assert request["path"] == "/hook/SECRET1234"
    assert request["json"]["title"] == "experiment 'svm' finished"
    assert request["json"]["message"] == "metrics: accuracy=0.9"
    assert "JSON: 3 attempt(s), last: A Connection error occurred" in caplog.text
    assert "SECRET1234" not in caplog.text


def test_environment_variables_in_urls(http_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_HOST", http_server.url.removeprefix("http://"))
    monkeypatch.setenv("HOOK_KEY", "envSECRETkey")
    n = AppriseNotifier("json://${HOOK_HOST}/hook/${HOOK_KEY}", **FAST)
    n.send_message("hello")
    assert [r["path"] for r in http_server.requests] == ["/hook/envSECRETkey"]
    assert any("envSECRETkey" in s for s in n.secrets())
    monkeypatch.delenv("HOOK_KEY")
    with pytest.raises(ValueError, match="URL 1: environment variable HOOK_KEY is not set"):
        AppriseNotifier("json://${HOOK_HOST}/hook/${HOOK_KEY}")
    monkeypatch.setenv("HOOK_KEY", "$(touch /tmp/pwned) ${HOME}")
    AppriseNotifier("json://${HOOK_HOST}/hook/${HOOK_KEY}", **FAST).send_message("x")
    assert http_server.requests[-1]["path"].startswith("/hook/$(touch")  # text, never run


# -- TLS with a private CA --------------------------------------------------------------------


def test_https_needs_the_ca_to_be_trusted(
    https_server: Any,
    point_services: Any,
    certs: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    point_services(https_server.url)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    slack = SlackNotifier(WEBHOOK, **{**FAST, "retries": 0})
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        slack.on_job_start(experiment())  # the test CA is unknown: refused
    assert https_server.requests == []
    assert "notification not sent: Slack: 1 attempt(s)" in caplog.text
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca_pem))  # how requests trusts a CA
    slack.on_job_start(experiment())
    assert https_server.texts == ["experiment 'svm' started"]


# -- retries and budgets ----------------------------------------------------------------------


def test_5xx_is_retried_until_it_arrives_once(local: Any, caplog: pytest.LogCaptureFixture) -> None:
    local.queue(500, b"oops")
    local.queue(503, b"busy")
    slack = SlackNotifier(WEBHOOK, retries=3, **FAST)
    with caplog.at_level(logging.INFO):
        slack.on_job_start(experiment())
    assert len(local.requests) == 3
    assert local.delivered == 1
    assert "Attempt 1/4 for 'Slack' failed; trying again." in caplog.text  # Apprise's retry
    assert not [r for r in caplog.records if r.name == LOGGER]


def test_gives_up_after_the_retries(local: Any, caplog: pytest.LogCaptureFixture) -> None:
    local.queue(502, times=10)
    slack = SlackNotifier(WEBHOOK, **{**FAST, "retries": 2})
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        slack.on_job_start(experiment())
    assert len(local.requests) == 3
    assert local.delivered == 0
    assert "SlackNotifier: notification not sent: Slack: 3 attempt(s), last: " in caplog.text
    assert "error=502" in caplog.text


def test_repeated_failures_silence_the_notifier_until_next_job(
    local: Any, caplog: pytest.LogCaptureFixture
) -> None:
    local.queue(404, b"no_service", times=100)
    slack = SlackNotifier(WEBHOOK, send_message_for_trials=True, **{**FAST, "retries": 0})
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run_group(slack)  # 8 messages: 3 are tried
    assert len(local.requests) == 3
    assert "SlackNotifier: silent until the next job starts" in caplog.text
    local.replies.clear()
    slack.on_job_start(group())
    assert local.delivered == 1


def test_silent_server_costs_at_most_the_budget(
    silent_server: str, point_services: Any, caplog: pytest.LogCaptureFixture
) -> None:
    point_services(silent_server)
    budget = 1.0
    # Without the budget: 11 attempts of 1 s each, over 11 s. With it: about 1 s; the 3 s
    # margin is for a loaded machine (load average 4 on 2 cores) and still tells them apart.
    slack = SlackNotifier(
        WEBHOOK, timeout=1.0, retries=10, retry_wait=0.05, max_total_seconds=budget
    )
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        slack.on_job_start(experiment())  # must not raise
    elapsed = time.monotonic() - start
    assert elapsed < budget + 3.0, elapsed
    assert "notification not sent: Slack: " in caplog.text


def test_connection_refused_is_retried_then_logged(
    closed_port: int, point_services: Any, caplog: pytest.LogCaptureFixture
) -> None:
    point_services(f"http://127.0.0.1:{closed_port}")
    tg = TelegramNotifier(TOKEN, 1, **{**FAST, "retries": 3})
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        tg.on_job_end(group(), exception=ValueError("x"))
    assert "Telegram: 4 attempt(s), last: A connection error occurred" in caplog.text


def test_a_urls_own_arguments_win() -> None:
    slack = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ml?rto=7"  # after "#channel"
    n = AppriseNotifier("json://localhost/?retry=0&cto=9", slack, timeout=3, retries=4)
    json, slack = n._services
    assert (json.retry, json.socket_connect_timeout, json.socket_read_timeout) == (0, 9.0, 3.0)
    assert (slack.retry, slack.socket_connect_timeout, slack.socket_read_timeout) == (4, 3.0, 7.0)
    assert slack.channels == ["#ml"]


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="need retries >= 0, timeout > 0"):
        AppriseNotifier("json://localhost", retries=-1)
    with pytest.raises(ValueError, match="need retries >= 0, timeout > 0"):
        SlackNotifier(WEBHOOK, timeout=0)
    with pytest.raises(ValueError, match="and max_total_seconds > 0"):
        AppriseNotifier("json://localhost", max_total_seconds=0)
    with pytest.raises(ValueError, match="max_consecutive_failures must be >= 1"):
        AppriseNotifier("json://localhost", max_consecutive_failures=0)
    with pytest.raises(ValueError, match="URL 2: not an Apprise URL such as 'slack://"):
        AppriseNotifier("json://localhost", "hooks.slack.com/services/x")


# -- credentials ------------------------------------------------------------------------------


def test_no_secret_in_repr_or_logs(
    local: Any,
    closed_port: int,
    smtp_server: Any,
    point_services: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    local.queue(403, f"bad token {TOKEN}".encode())
    local.queue(500, WEBHOOK_PATH.encode())
    slack = SlackNotifier(WEBHOOK, channel="#ml", **{**FAST, "retries": 0})
    tg = TelegramNotifier(TOKEN, chat_id=7, **FAST)
    hook = AppriseNotifier(f"json://127.0.0.1:{closed_port}/hooks/jsonSECRETpath", **FAST)
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
    assert WEBHOOK in slack.secrets() and "XXXXsecretXXXX" in slack.secrets()
    assert TOKEN in tg.secrets()
    assert "wrong-" + smtp_server.password in mail.secrets()
    assert DesktopNotifier().secrets() == []
    secrets = [WEBHOOK, WEBHOOK_PATH, "XXXXsecretXXXX", TOKEN, "jsonSECRETpath"]
    secrets.append("wrong-" + smtp_server.password)

    # Everything, Apprise's and urllib3's debug output included.
    with caplog.at_level(logging.DEBUG):
        for notifier in (slack, tg, hook, mail):
            notifier.on_job_start(experiment())
    for notifier in (slack, tg, hook, mail):
        assert not any(s in repr(notifier) for s in secrets)
    assert [s for s in secrets if s in caplog.text] == []
    assert "Slack: 1 attempt(s), last: Failed to send to Slack: error=403" in caplog.text
    assert "Telegram" in caplog.text and "JSON" in caplog.text
    assert "EmailNotifier: notification not sent: E-Mail:" in caplog.text


def test_bad_url_error_does_not_echo_it() -> None:
    with pytest.raises(ValueError, match=r"https://hooks\.slack\.com/services/") as info:
        SlackNotifier("ftp://hooks.example.org/services/SECRET")
    assert "SECRET" not in str(info.value)
    with pytest.raises(ValueError, match="URL 1: not an Apprise URL") as info:
        AppriseNotifier("nosuch://user:pwSECRET@host/tokenSECRET")
    assert "SECRET" not in str(info.value)
    with pytest.raises(ValueError, match="token must look like"):
        TelegramNotifier("12/34", chat_id=1)
    with pytest.raises(ValueError, match="token must look like"):
        TelegramNotifier("123456:AAH/99", chat_id=1)  # no second chat smuggled in the token
    # A URL Apprise knows, of another service: not a Slack webhook.
    with pytest.raises(ValueError, match=r"SlackNotifier: webhook_url must look like") as info:
        SlackNotifier("https://discord.com/api/webhooks/1234/discordSECRET")
    assert "SECRET" not in str(info.value)


# -- email ------------------------------------------------------------------------------------


def _mail(server: Any, **kwargs: Any) -> EmailNotifier:
    kwargs = {"sender": "ml@example.org", "host": "127.0.0.1", "port": server.port, **kwargs}
    return EmailNotifier(kwargs.pop("to", "ops@example.org"), **{**FAST, **kwargs})


def test_email_plain(smtp_server: Any) -> None:
    mail = _mail(
        smtp_server,
        to=["a@example.org", "b@example.org"],
        sender="ML Bot <ml@example.org>",
        security="none",
    )
    run_group(mail)
    assert len(smtp_server.received) == 4  # one e-mail per recipient and message
    got = smtp_server.received[-2:]
    assert [g.rcpt_tos for g in got] == [["a@example.org"], ["b@example.org"]]
    assert {g.mail_from for g in got} == {"ml@example.org"} and got[0].login is None
    assert got[0].message["From"] == "ML Bot <ml@example.org>"
    assert got[0].message["Subject"] == "[ml-experiment] group 'svm' finished in 1m 05s"
    body = got[0].message.get_content()
    assert body.splitlines() == ["best value: 0.91", "best params: C=1, kernel='rbf'"]
    assert smtp_server.received[0].message["Subject"] == "[ml-experiment] group 'svm' started"


def test_email_login(smtp_server: Any) -> None:
    mail = _mail(
        smtp_server,
        security="none",
        username=smtp_server.user,
        password=smtp_server.password,
        subject_prefix="[svm]",
    )
    mail.on_job_end(experiment(), exception=MemoryError("out of memory"), duration=7)
    (got,) = smtp_server.received
    assert got.login == smtp_server.user
    assert got.message["Subject"] == "[svm] experiment 'svm' failed after 7.0s"
    assert "error: MemoryError: out of memory" in got.message.get_content()


def test_email_wrong_password(smtp_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    mail = _mail(smtp_server, security="none", username=smtp_server.user, password="nope")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        mail.on_job_start(experiment())
    assert smtp_server.received == [] and smtp_server.auth_attempts
    assert "notification not sent: E-Mail: 3 attempt(s)" in caplog.text


def test_email_starttls_with_login(
    smtp_starttls_server: Any, certs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_pem))  # how OpenSSL trusts another CA
    server = smtp_starttls_server
    mail = _mail(server, username=server.user, password=server.password)  # starttls
    mail.send_message("experiment 'svm' started")
    (got,) = server.received
    assert got.login == server.user
    assert got.message["Subject"] == "[ml-experiment] experiment 'svm' started"


def test_email_starttls_untrusted_certificate(
    smtp_starttls_server: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    mail = _mail(smtp_starttls_server, retries=0)  # the system CAs do not know the test CA
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        mail.on_job_start(experiment())
    assert smtp_starttls_server.received == []
    assert "notification not sent: E-Mail: 1 attempt(s)" in caplog.text


def test_email_starttls_refused_by_plain_server(smtp_server: Any) -> None:
    mail = _mail(smtp_server, retries=0)
    with pytest.raises(Exception, match="E-Mail: 1 attempt"):
        mail.send_message("hello")  # never falls back to plain text
    assert smtp_server.received == []


def test_email_implicit_tls(smtps_server: Any, certs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_pem))
    mail = _mail(smtps_server, host="localhost", security="ssl")
    mail.send_message("group 'svm' finished\nbest value: 1")
    (got,) = smtps_server.received
    assert got.rcpt_tos == ["ops@example.org"]
    assert got.message["Subject"] == "[ml-experiment] group 'svm' finished"
    assert got.message.get_content().strip() == "best value: 1"


def test_email_arguments() -> None:
    def make(**kw: Any) -> EmailNotifier:
        return EmailNotifier("a@example.org", sender="b@example.org", **kw)

    # Apprise's default ports for each security; its own check of the mode.
    assert make()._services[0].port == 587
    assert make(security="ssl")._services[0].port == 465
    assert make(security="none")._services[0].port == 25
    assert make(port=2525)._services[0].port == 2525
    with pytest.raises(ValueError, match="EmailNotifier: security must be 'starttls', 'ssl'"):
        make(security="tls")
    with pytest.raises(ValueError, match="sender an address"):
        EmailNotifier("a@example.org", sender="nobody")
    # What Apprise would take silently: a password as the user name, the sender as the only
    # recipient, a second recipient smuggled in by a line break.
    with pytest.raises(ValueError, match="password given without username"):
        make(password="x")
    with pytest.raises(ValueError, match="at least one address"):
        EmailNotifier([], sender="b@example.org")
    with pytest.raises(ValueError, match="each in its own string"):
        EmailNotifier("a@example.org\nBcc: evil@example.org", sender="b@example.org")
    with pytest.raises(ValueError, match="each in its own string"):
        EmailNotifier("a@example.org", sender="b@example.org,c@example.org")


# -- desktop ----------------------------------------------------------------------------------


def test_desktop_without_a_service_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        n = DesktopNotifier(send_message_for_trials=True)
        if n._services:
            pytest.skip("this machine has a desktop notification service")
        run_group(n)
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1
    assert "no desktop notification service is available" in records[0].getMessage()


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
