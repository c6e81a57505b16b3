"""Who is running a decorated function right now, and the live trial of a group trial.

Context variables, set through context managers: a launch or trial context is always restored
when its block ends, also on errors. Kept in one small module with no heavy imports (and no
import of the execution backends), so ``import ml_experiment`` stays light.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ml_experiment._job import JobFunction


class Launch(Protocol):
    """Whoever is running a script: the CLI, a Ray worker, or a direct ``python script.py``."""

    def execute(self, job_fn: JobFunction, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run ``job_fn`` the way this launch requires."""


class PlainCall:
    """Inside a running job (or trial), calls of ``@job`` functions are ordinary calls."""

    def execute(self, job_fn: JobFunction, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return job_fn.fn(*args, **kwargs)


_launch: ContextVar[Launch | None] = ContextVar("ml_experiment_launch", default=None)
# The live trial context (see hpo._trial) while a group trial runs.
_trial_context: ContextVar[Any] = ContextVar("ml_experiment_trial", default=None)

_lock = threading.Lock()
# Job functions decorated since the registry was last cleared (i.e. while loading one script).
_registry: list[JobFunction] = []


def current_launch() -> Launch | None:
    return _launch.get()


@contextlib.contextmanager
def launched(launch: Launch | None) -> Iterator[None]:
    """Make ``launch`` the current launch for the block."""
    token = _launch.set(launch)
    try:
        yield
    finally:
        _launch.reset(token)


@contextlib.contextmanager
def in_trial(ctx: Any) -> Iterator[None]:
    """Make ``ctx`` the live trial context for the block (``Trial.get_current()``)."""
    token = _trial_context.set(ctx)
    try:
        yield
    finally:
        _trial_context.reset(token)


def get_trial_context() -> Any:
    return _trial_context.get()


def register(job_fn: JobFunction) -> None:
    with _lock:
        _registry.append(job_fn)


def take_registered() -> list[JobFunction]:
    """Return and clear the job functions registered so far."""
    with _lock:
        found = list(_registry)
        _registry.clear()
    return found
