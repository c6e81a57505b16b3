"""The ``@job`` decorator: marks a script's entry point; the function signature defines the parameters."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from ml_experiment import _runtime


@dataclass(frozen=True)
class JobOptions:
    """What ``@job(...)`` was given."""

    callbacks: tuple[Any, ...] = ()
    autologging_backends: tuple[Any, ...] = ()
    optimization_metric: Any = None
    data_loader: Any = None
    log_seeds: bool = True
    log_system_info: bool = True
    delete_if_failed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class JobFunction:
    """A decorated entry point.

    Calling it runs the function the way the current launch says: through the CLI (job file),
    inside a group trial on a Ray worker, or, when the script is run directly with
    ``python train.py --C 0.5``, as a single tracked experiment.
    """

    def __init__(self, fn: Callable[..., Any], options: JobOptions) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.options = options
        self.signature = inspect.signature(fn)
        self.source_file = inspect.getsourcefile(fn)
        _runtime.register(self)

    @property
    def name(self) -> str:
        return self.fn.__qualname__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        launch = _runtime.current_launch()
        if launch is None:
            from ml_experiment.cli._direct import DirectLaunch

            launch = DirectLaunch()
        return launch.execute(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<job {self.name}>"


@overload
def job(fn: Callable[..., Any], /) -> JobFunction: ...


@overload
def job(
    fn: None = None,
    /,
    *,
    callbacks: Sequence[Any] | None = None,
    autologging_backends: Sequence[Any] | Any | None = None,
    optimization_metric: Any = None,
    data_loader: Any = None,
    log_seeds: bool = True,
    log_system_info: bool = True,
    delete_if_failed: bool = False,
) -> Callable[[Callable[..., Any]], JobFunction]: ...


def job(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    callbacks: Sequence[Any] | None = None,
    autologging_backends: Sequence[Any] | Any | None = None,
    optimization_metric: Any = None,
    data_loader: Any = None,
    log_seeds: bool = True,
    log_system_info: bool = True,
    delete_if_failed: bool = False,
) -> JobFunction | Callable[[Callable[..., Any]], JobFunction]:
    """Mark the entry point of a training script.

    Usable bare (``@job``) or with arguments (``@job(callbacks=[...])``).

    Args:
        callbacks: ``ml_experiment.callbacks.Callback`` instances.
        autologging_backends: ``AutologgingBackend`` members whose MLflow autologging to enable.
        optimization_metric: default metric of a group when the job file gives none: a name,
            or ``{"name": ..., "direction": ...}``.
        data_loader: a ``DataLoader`` subclass (or instance) whose data is loaded once and shared.
        log_seeds: record the seeds given to random number generators.
        log_system_info: record git, software and hardware information.
        delete_if_failed: delete the run instead of keeping it as FAILED.
    """
    from ml_experiment.exceptions import ConfigError

    backends: tuple[Any, ...]
    if autologging_backends is None:
        backends = ()
    elif isinstance(autologging_backends, str) or not isinstance(autologging_backends, Sequence):
        backends = (autologging_backends,)
    else:
        backends = tuple(autologging_backends)
    if backends:
        from ml_experiment.integrations._autolog import validate_backends

        backends = validate_backends(backends)
    if data_loader is not None:
        from ml_experiment._data import loader_class

        data_loader = loader_class(data_loader)
    for cb in callbacks or ():
        if isinstance(cb, type):
            raise ConfigError(
                f"callbacks must be instances, got the class {cb.__name__}; use {cb.__name__}()",
                source="@job",
                field="callbacks",
            )
    options = JobOptions(
        callbacks=tuple(callbacks or ()),
        autologging_backends=backends,
        optimization_metric=optimization_metric,
        data_loader=data_loader,
        log_seeds=log_seeds,
        log_system_info=log_system_info,
        delete_if_failed=delete_if_failed,
    )
    if fn is not None:
        if not callable(fn):
            raise TypeError("@job must decorate a function")
        return JobFunction(fn, options)

    def decorate(f: Callable[..., Any]) -> JobFunction:
        return JobFunction(f, options)

    return decorate
