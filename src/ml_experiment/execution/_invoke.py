"""Calling the user's function: binding parameters, and reading what it returns or yields."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ml_experiment.exceptions import ConfigError, ExecutionError
from ml_experiment.tracking._mlflow import numeric_metrics

StepHook = Callable[[int, dict[str, float]], None]

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def bind_params(
    signature: inspect.Signature,
    given: Mapping[str, Any],
    *,
    fn_name: str,
    source: Any = None,
    searched: Collection[str] = (),
) -> dict[str, Any]:
    """Effective parameters: ``given`` values, then signature defaults.

    A given value is checked against the parameter's annotation, with the coercions a user
    expects (``"1e-3"`` or ``1`` for a float); names in ``searched`` are not checked (their
    values come from a search space's distributions, or are placeholders before the search).

    Raises:
        ConfigError: an unknown parameter (unless the function takes ``**kwargs``), a required
            parameter without a value, or a value that contradicts the annotation
            (``params.n: expected int, got 'three'``).
    """
    from ml_experiment.config import ParamTypeError, check_param

    params = signature.parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind not in _VARIADIC]
    for key in given:
        if key not in named and not takes_kwargs:
            accepted = ", ".join(named) or "no parameters"
            raise ConfigError(
                f"unknown parameter {key!r} for {fn_name}(); it accepts: {accepted}",
                source=source,
                field=f"params.{key}",
            )
    effective: dict[str, Any] = {}
    for name in named:
        p = params[name]
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ConfigError(
                f"{fn_name}() has a positional-only parameter {name!r}; make it a normal parameter",
                source=source,
                field=f"params.{name}",
            )
        if name in given:
            value = given[name]
            if name not in searched:
                try:
                    value = check_param(value, p.annotation)
                except ParamTypeError as exc:
                    raise ConfigError(
                        exc.reason, source=source, field=f"params.{name}{exc.loc}"
                    ) from None
            effective[name] = value
        elif p.default is not inspect.Parameter.empty:
            effective[name] = p.default
        else:
            raise ConfigError(
                f"missing required parameter {name!r} of {fn_name}(): give it under params "
                "or with --params",
                source=source,
                field=f"params.{name}",
            )
    effective.update({k: v for k, v in given.items() if k not in effective})
    return effective


def split_result(value: Any) -> tuple[dict[str, float], dict[str, str]]:
    """``None``, a metrics dict, or ``(metrics, artifacts)`` -> (metrics, artifacts)."""
    if value is None:
        return {}, {}
    if isinstance(value, Mapping):
        return numeric_metrics(value), {}
    if isinstance(value, tuple) and len(value) == 2:
        metrics, artifacts = value
        if metrics is not None and not isinstance(metrics, Mapping):
            raise ExecutionError(
                f"the metrics returned must be a dict, got {type(metrics).__name__}"
            )
        if artifacts is not None and not isinstance(artifacts, Mapping):
            raise ExecutionError(
                f"the artifacts returned must be a dict of name -> path, got {type(artifacts).__name__}"
            )
        return numeric_metrics(metrics or {}), {
            str(k): str(v) for k, v in (artifacts or {}).items()
        }
    raise ExecutionError(
        "a job must return None, a metrics dict, or a (metrics, artifacts) tuple; "
        f"got {type(value).__name__}"
    )


def invoke(
    fn: Callable[..., Any],
    params: Mapping[str, Any],
    *,
    on_step: StepHook | None = None,
) -> tuple[dict[str, float], dict[str, str], int]:
    """Call ``fn(**params)``; a generator's yields go to ``on_step`` one step each.

    Returns metrics, artifacts and the number of steps yielded. For a generator, the returned
    value (``return metrics`` inside it) wins; otherwise the last yield is the final metrics.
    """
    out = fn(**params)
    if not inspect.isgenerator(out):
        metrics, artifacts = split_result(out)
        return metrics, artifacts, 0
    step, last = 0, dict[str, float]()
    while True:
        try:
            item = next(out)
        except StopIteration as stop:
            metrics, artifacts = split_result(stop.value)
            return (metrics or last), artifacts, step
        if item is None:
            continue
        if not isinstance(item, Mapping):
            out.close()
            raise ExecutionError(
                f"a job generator must yield metrics dicts, got {type(item).__name__}"
            )
        last = numeric_metrics(item, where=f"step {step}")
        if on_step is not None:
            on_step(step, last)
        step += 1


def final_metrics(
    metrics: Mapping[str, float], last_step: Mapping[str, float] | None
) -> dict[str, float]:
    """The final metrics not already logged, with the same value, by the last yielded step."""
    if not last_step:
        return dict(metrics)
    return {k: v for k, v in metrics.items() if last_step.get(k) != v}
