"""Binding parameters and reading what a job returns or yields."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from ml_experiment.exceptions import ConfigError, ExecutionError, TrackingError
from ml_experiment.execution._invoke import bind_params, final_metrics, invoke, split_result


def sig(fn):
    return inspect.signature(fn)


def test_bind_fills_defaults_and_keeps_given() -> None:
    def f(a, b=2, *, c="x"):
        return None

    assert bind_params(sig(f), {"a": 1, "c": "y"}, fn_name="f") == {"a": 1, "b": 2, "c": "y"}


def test_bind_missing_required_names_the_param() -> None:
    def f(lr, epochs=3):
        return None

    with pytest.raises(ConfigError, match=r"params\.lr: missing required parameter 'lr'"):
        bind_params(sig(f), {}, fn_name="f", source="job.yaml")


def test_bind_unknown_param_lists_accepted() -> None:
    def f(a=1, b=2):
        return None

    with pytest.raises(ConfigError, match=r"unknown parameter 'c' .* it accepts: a, b"):
        bind_params(sig(f), {"c": 1}, fn_name="f")


def test_bind_var_kwargs_accepts_extra() -> None:
    def f(a=1, **rest):
        return None

    assert bind_params(sig(f), {"z": 3}, fn_name="f") == {"a": 1, "z": 3}


def test_split_result_shapes() -> None:
    assert split_result(None) == ({}, {})
    assert split_result({"acc": np.float32(0.5)}) == ({"acc": 0.5}, {})
    assert split_result(({"acc": 1}, {"model": "m.pkl"})) == ({"acc": 1.0}, {"model": "m.pkl"})
    with pytest.raises(ExecutionError, match="got list"):
        split_result([1, 2])
    with pytest.raises(TrackingError, match="'acc' must be a number"):
        split_result({"acc": "high"})


def test_invoke_generator_steps_and_final() -> None:
    seen = []

    def gen(n):
        for i in range(n):
            yield {"loss": 1.0 / (i + 1)}
        return {"loss": 0.01, "acc": 0.9}, {"m": "x"}

    metrics, artifacts, steps = invoke(gen, {"n": 3}, on_step=lambda s, m: seen.append((s, m)))
    assert steps == 3 and [s for s, _ in seen] == [0, 1, 2]
    assert metrics == {"loss": 0.01, "acc": 0.9} and artifacts == {"m": "x"}


def test_invoke_generator_without_return_uses_last_yield() -> None:
    def gen():
        yield {"a": 1}
        yield {"a": 2}

    assert invoke(gen, {})[0] == {"a": 2.0}


def test_invoke_generator_bad_yield() -> None:
    def gen():
        yield 5

    with pytest.raises(ExecutionError, match="must yield metrics dicts"):
        invoke(gen, {})


def test_final_metrics_skips_values_already_logged_at_last_step() -> None:
    assert final_metrics({"a": 1.0, "b": 2.0}, {"a": 1.0}) == {"b": 2.0}
    assert final_metrics({"a": 1.0}, None) == {"a": 1.0}
