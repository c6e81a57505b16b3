import pytest

from ml_experiment.tracking.redact import (
    REDACTED,
    SECRET_MARKERS,
    is_secret_key,
    redact_params,
    redact_value,
)


@pytest.mark.parametrize(
    "name",
    [
        "token",
        "TOKEN",
        "hf_token",
        "access_token",
        "botToken",
        "password",
        "DB_PASSWORD",
        "dbpassword",
        "passwd",
        "secret",
        "client_secret",
        "AWS_SECRET_ACCESS_KEY",
        "api_key",
        "apiKey",
        "openai-api-key",
        "apikey",
        "access_key",
        "private_key",
        "credential",
        "credentials",
        "gcp.credentials_json",
        "webhook",
        "webhook_url",
        "slackWebhookUrl",
        "auth",
        "auth_header",
        "oauth_token",
        "key",
        "ssh_key",
        "encryption_key",
    ],
)
def test_secret_keys(name):
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    [
        "monkey",
        "keys",
        "key_size",
        "keyboard",
        "tokenizer",
        "max_tokens",
        "bos_token",
        "pad_token_id",
        "author",
        "learning_rate",
        "C",
        "kernel",
        "chat_id",
        "username",
        "",
    ],
)
def test_not_secret_keys(name):
    assert not is_secret_key(name)


def test_markers_are_all_detected():
    assert REDACTED == "***"
    for marker in SECRET_MARKERS:
        assert is_secret_key(marker)
        assert is_secret_key(f"my_{marker}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "postgresql://alice:s3cret@db.example.com:5432/mlflow",
            "postgresql://***@db.example.com:5432/mlflow",
        ),
        ("https://user:p@ss@host/path", "https://***@host/path"),
        ("https://ghp_abc@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
        (
            "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "https://hooks.slack.com/services/***",
        ),
        (
            "https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage",
            "https://api.telegram.org/bot***/sendMessage",
        ),
        (
            "https://discord.com/api/webhooks/123/abcDEF",
            "https://discord.com/api/webhooks/***",
        ),
        (
            "run with --uri mysql://root:pw@localhost/db now",
            "run with --uri mysql://***@localhost/db now",
        ),
        ("https://example.com/path?q=1", "https://example.com/path?q=1"),
        ("user@example.com", "user@example.com"),
        ("/data/bottle/file.csv", "/data/bottle/file.csv"),
        ("sqlite:///mlruns.db", "sqlite:///mlruns.db"),
        ("plain", "plain"),
    ],
)
def test_redact_value_strings(value, expected):
    assert redact_value(value) == expected


def test_redact_value_other_types():
    assert redact_value(3) == 3
    assert redact_value(None) is None
    assert redact_value(["https://a:b@h/x", 1]) == ["https://***@h/x", 1]
    assert redact_value(("https://a:b@h/x",)) == ("https://***@h/x",)
    assert redact_value({"password": "x"}) == {"password": REDACTED}


def test_redact_params():
    params = {
        "C": 1.0,
        "kernel": "rbf",
        "api_key": "sk-123",
        "token": 12345,
        "password": None,
        "tracking_uri": "https://bob:hunter2@mlflow.example.com",
        "notifier": {
            "webhook_url": "https://hooks.slack.com/services/T/B/X",
            "channel": "#runs",
            "smtp": {"user": "me", "password": "pw"},
        },
        "layers": [3, 4],
    }
    original = {**params, "notifier": dict(params["notifier"])}
    redacted = redact_params(params)
    assert redacted == {
        "C": 1.0,
        "kernel": "rbf",
        "api_key": REDACTED,
        "token": REDACTED,
        "password": None,
        "tracking_uri": "https://***@mlflow.example.com",
        "notifier": {
            "webhook_url": REDACTED,
            "channel": "#runs",
            "smtp": {"user": "me", "password": REDACTED},
        },
        "layers": [3, 4],
    }
    assert params["api_key"] == "sk-123"  # input untouched
    assert params["notifier"] == original["notifier"]


def test_secret_key_with_nested_value_is_fully_hidden():
    assert redact_params({"credentials": {"user": "a", "pass": "b"}}) == {"credentials": REDACTED}
