"""How a command ended: the one mapping from outcomes to exit codes and what the user sees.

Used by ``ml-experiment`` (``cli.main``) and by a decorated script run directly
(``python train.py``), so both entry points print and exit alike:

====  ===========================================================================
0     success
1     a failed run or group (``RunFailedError``), or another error while running
      (``TrackingError``, ``ExecutionError``, ...)
2     bad input: a job file, a flag or a parameter (``ConfigError``, usage errors)
130   interrupted (Ctrl-C)
143   stopped by SIGTERM (``Interrupted`` carries 128 + the signal number)
====  ===========================================================================
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

from ml_experiment.exceptions import ConfigError, Interrupted, MLExperimentError, RunFailedError

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "Carrier",
    "exit_code",
    "full_errors",
    "report",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def full_errors() -> bool:
    """Whether ``ML_EXPERIMENT_FULL_ERROR`` asks for tracebacks."""
    return os.environ.get("ML_EXPERIMENT_FULL_ERROR", "").lower() in ("1", "true", "yes")


def _usage_error_class() -> type[Exception] | None:
    # Typer may ship its own copy of click: find click's base class through Typer's public name.
    try:
        import typer
    except ImportError:  # pragma: no cover - typer is a dependency
        return None
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == "ClickException":
            return cls
    return None


def _is_usage_error(exc: BaseException) -> bool:
    cls = _usage_error_class() if "typer" in sys.modules or "click" in sys.modules else None
    return cls is not None and isinstance(exc, cls)


def exit_code(exc: BaseException) -> int | None:
    """The exit code for an outcome, or None for an unexpected error (a bug: re-raise it)."""
    if isinstance(exc, Interrupted):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, ConfigError):
        return EXIT_BAD_INPUT
    if isinstance(exc, MLExperimentError):
        return EXIT_FAILED
    if _is_usage_error(exc):
        return int(getattr(exc, "exit_code", EXIT_BAD_INPUT))
    return None


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _print(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _print_notes(exc: BaseException) -> None:
    # A second failure while finishing (e.g. the store refused the final write) is attached as a
    # PEP 678 note, so the original error stays the headline.
    for note in getattr(exc, "__notes__", None) or ():
        _print(_one_line(note))


def _usage_message(exc: BaseException) -> str:
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    if not message.strip():
        return ""
    if ctx is not None and getattr(ctx, "command_path", None):
        return f"{_one_line(message)} (see '{ctx.command_path} --help')"
    return _one_line(message)


def report(exc: BaseException) -> int | None:
    """Print what the user needs to see about ``exc`` on stderr; return its exit code.

    Returns None, printing nothing, for an unexpected error: the caller re-raises it so that its
    traceback shows.
    """
    code = exit_code(exc)
    if code is None:
        return None
    if full_errors():
        traceback.print_exception(exc, file=sys.stderr)
    elif isinstance(exc, RunFailedError) and exc.__cause__ is not None:
        traceback.print_exception(exc.__cause__, file=sys.stderr)  # the user's traceback
    if isinstance(exc, KeyboardInterrupt):
        _print(_one_line(exc.message if isinstance(exc, Interrupted) else "interrupted"))
    elif isinstance(exc, RunFailedError):
        _print(f"error: {exc}")
    elif isinstance(exc, MLExperimentError):
        _print(f"error: {_one_line(exc)}")
    elif message := _usage_message(exc):  # empty for "no arguments": the help is printed
        _print(f"error: {message}")
    # The summary ends with the notes (a write failure while finishing), also after a traceback.
    _print_notes(exc)
    return code


class Carrier(Exception):
    """Carries a ``KeyboardInterrupt`` (or ``Interrupted``) out of a Typer command.

    Typer turns any ``KeyboardInterrupt`` raised in a command into a bare exit code 130, which
    would lose a SIGTERM's 143 and the ``--resume`` hint; ``cli.main`` unwraps this instead.
    """

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


def interrupted_code(code: int) -> int:
    """For a code Typer returned itself (it turns Ctrl-C during parsing into 130): say so."""
    if code == EXIT_INTERRUPTED:
        _print("interrupted")
    return code
