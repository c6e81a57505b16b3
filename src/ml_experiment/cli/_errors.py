"""How the CLI reports errors: one line for bad input, the traceback only when asked."""

from __future__ import annotations

import os
import sys
import traceback


def full_errors() -> bool:
    return os.environ.get("ML_EXPERIMENT_FULL_ERROR", "").lower() in ("1", "true", "yes")


def report_bad_input(exc: BaseException) -> None:
    """Print ``error: <message>`` on one line (exit code 2 is the caller's)."""
    if full_errors():
        traceback.print_exception(exc, file=sys.stderr)
    message = " ".join(str(exc).split())
    print(f"error: {message}", file=sys.stderr, flush=True)


def report_failed_run(exc: BaseException) -> None:
    """A failed run: the user's traceback (the cause), then a one-line summary."""
    cause = exc.__cause__
    if cause is not None and not full_errors():
        traceback.print_exception(cause, file=sys.stderr)
    elif full_errors():
        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: {exc}", file=sys.stderr, flush=True)
