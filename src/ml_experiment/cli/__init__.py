"""The command-line interface, and how a directly run script ends.

Loaded lazily: ``ml_experiment.cli._direct`` (used by ``python train.py``) must not import Typer.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """The ``ml-experiment`` command."""
    from ml_experiment.cli._app import main as _main

    if argv is not None:  # called from Python: end as a function does
        _main(argv)
        return
    try:
        _main(None)
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    from ml_experiment._exit import leave

    leave(code)


def __getattr__(name: str) -> Any:
    if name == "app":
        from ml_experiment.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
