"""Exception hierarchy: the CLI maps ConfigError to exit code 2, ExecutionError to 1."""

from __future__ import annotations

from typing import Any


class MLExperimentError(Exception):
    """Base class of every error ml-experiment raises on purpose."""


class ConfigError(MLExperimentError, ValueError):
    """Bad input: a job file, a CLI flag or a decorator argument.

    The message is one line, ``<source>: <field>: <what is wrong>``, with the parts that are known.
    """

    def __init__(self, message: str, *, source: Any = None, field: str | None = None) -> None:
        self.source = str(source) if source is not None else None
        self.field = field
        self.reason = message
        parts = [p for p in (self.source, field) if p]
        super().__init__(": ".join([*parts, message]))


class TrackingError(MLExperimentError):
    """The knowledge center could not be reached or written."""


class ExecutionError(MLExperimentError):
    """A job could not be run (as opposed to a run that failed)."""


class RunFailedError(MLExperimentError):
    """One or more runs of a job failed; their details are in the knowledge center."""


class Interrupted(KeyboardInterrupt):
    """A run or group stopped by a signal: Ctrl-C (SIGINT, exit 130) or SIGTERM (exit 143).

    A ``KeyboardInterrupt``, so code that already treats Ctrl-C as "stop now" treats SIGTERM the
    same way. ``message`` says what was stopped and how to continue (``--resume`` for groups).
    """

    def __init__(self, message: str = "interrupted", *, signum: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class MissingDependencyError(MLExperimentError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""

    def __init__(self, what: str, package: str, extra: str) -> None:
        super().__init__(
            f"{what} needs the `{package}` package: pip install 'ml-experiment[{extra}]'"
        )


class NotInTrialError(MLExperimentError, RuntimeError):
    """``Trial.get_current()`` was called outside a group trial."""


__all__ = [
    "ConfigError",
    "ExecutionError",
    "Interrupted",
    "MLExperimentError",
    "MissingDependencyError",
    "NotInTrialError",
    "RunFailedError",
    "TrackingError",
]
