"""``CallbackDispatcher.for_job``: the ``@job`` callbacks plus one notifier per ``notify:`` URL."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ml_experiment.callbacks import Callback
from ml_experiment.callbacks._dispatch import CallbackDispatcher
from ml_experiment.callbacks.notifiers import AppriseNotifier
from ml_experiment.exceptions import ConfigError


def job_fn(*callbacks: Any) -> Any:
    return SimpleNamespace(options=SimpleNamespace(callbacks=callbacks))


def test_notify_urls_become_notifiers_after_the_job_callbacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLX_HOOK_KEY", "envKEYsecret-1")
    mine = Callback()
    config = SimpleNamespace(
        source=Path("job.yaml"),
        notify=["json://127.0.0.1:9/hooks/${MLX_HOOK_KEY}", "mailto://bot:pw-SECRET-2@example.org"],
    )
    dispatch = CallbackDispatcher.for_job(config, job_fn(mine))
    first, *notifiers = dispatch.callbacks
    assert first is mine and [type(n) for n in notifiers] == [AppriseNotifier] * 2
    secrets = dispatch.secrets()
    assert "json://127.0.0.1:9/hooks/envKEYsecret-1" in secrets
    assert "/hooks/envKEYsecret-1" in secrets and "pw-SECRET-2" in secrets
    assert CallbackDispatcher.for_job(SimpleNamespace(), job_fn()).callbacks == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("slack://${MLX_UNSET_VAR}", "environment variable MLX_UNSET_VAR is not set"),
        ("nosuch://tokenSECRET", "not an Apprise URL such as 'slack://...'"),
        ("tokenSECRET", "not an Apprise URL such as 'slack://...'"),
    ],
)
def test_a_bad_notify_url_is_bad_input_that_does_not_echo_it(url: str, reason: str) -> None:
    config = SimpleNamespace(source=Path("job.yaml"), notify=["json://localhost", url])
    with pytest.raises(ConfigError) as info:
        CallbackDispatcher.for_job(config, job_fn())
    assert str(info.value).startswith(f"job.yaml: notify[1]: {reason}")
    assert "tokenSECRET" not in str(info.value)
