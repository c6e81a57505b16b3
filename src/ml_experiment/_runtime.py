"""Process-wide state shared by the decorator and the execution backends.

Kept in one small module with no heavy imports, so ``import ml_experiment`` stays light.
"""

from __future__ import annotations

import threading
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


_lock = threading.Lock()
_launch: Launch | None = None
# Job functions decorated since the registry was last cleared (i.e. while loading one script).
_registry: list[JobFunction] = []
# Set while a group trial runs in this process: the live trial context (see hpo._trial).
_trial_context = threading.local()


def current_launch() -> Launch | None:
    return _launch


def set_launch(launch: Launch | None) -> Launch | None:
    """Install ``launch`` and return the previous one (to restore it afterwards)."""
    global _launch
    with _lock:
        previous, _launch = _launch, launch
    return previous


def register(job_fn: JobFunction) -> None:
    with _lock:
        _registry.append(job_fn)


def take_registered() -> list[JobFunction]:
    """Return and clear the job functions registered so far."""
    with _lock:
        found = list(_registry)
        _registry.clear()
    return found


def set_trial_context(ctx: Any) -> None:
    _trial_context.value = ctx


def get_trial_context() -> Any:
    return getattr(_trial_context, "value", None)
