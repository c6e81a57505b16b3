"""Loading a script's ``@job`` function without running it, as a Ray worker does for each trial."""

from __future__ import annotations

import contextlib
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ml_experiment import _runtime
from ml_experiment.exceptions import ConfigError

if TYPE_CHECKING:
    from ml_experiment._job import JobFunction


@contextlib.contextmanager
def script_environment(script: Path, run_name: str) -> Iterator[None]:
    """``sys.argv`` and ``sys.path`` as they are for ``python script.py``; restored afterwards."""
    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [str(script)]
    sys.path.insert(0, str(script.parent))
    try:
        yield
    finally:
        sys.argv = old_argv
        sys.path[:] = old_path


def load_job_function(script: Path, name: str | None = None) -> JobFunction:
    """Import ``script`` without running its ``__main__`` block and return its ``@job`` function."""
    _runtime.take_registered()
    with script_environment(script, "__ml_experiment__"):
        runpy.run_path(str(script), run_name="__ml_experiment__")
    found = _runtime.take_registered()
    if not found:
        raise ConfigError(f"{script.name} defines no @job function", source=script)
    # Prefer the script's own function: an imported module may define a @job of the same name.
    own = [
        fn for fn in found if fn.source_file and Path(fn.source_file).resolve() == script.resolve()
    ]
    candidates = own or found
    if name is not None:
        for fn in reversed(candidates):
            if fn.name == name:
                return fn
    return candidates[-1]
