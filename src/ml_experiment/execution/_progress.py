"""The group progress bar (only on a terminal) and trial output, written past the console capture.

Both go to a duplicate of the original stdout taken before the group's console capture
redirects fd 1: the bar's redraws and the trials' own output (which each trial's run keeps in
its ``logs/console.log``) do not end up in the parent run's console log.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ml_experiment._output import QUIET, verbosity


class GroupProgress:
    """Trials done / total, running, failed, pruned and the best value so far."""

    def __init__(self, name: str, total: int) -> None:
        self.name = name
        self.total = total
        self._progress: Any = None
        self._task: Any = None
        self.enabled = (
            _is_terminal()
            and not os.environ.get("ML_EXPERIMENT_NO_PROGRESS")
            and verbosity() != QUIET
        )
        self._file: Any = None
        try:
            self._file = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
        except (AttributeError, OSError, ValueError):  # no real stdout (embedded, pytest)
            self._file = None

    def start(self, done: int, counts: dict[str, int]) -> None:
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=Console(file=self._file, force_terminal=True),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.name, total=self.total, completed=done, status="")

    def update(self, *, running: int, counts: dict[str, int], best: Any) -> None:
        if self._progress is None:
            return
        done = sum(counts.values())
        best_text = "-" if best is None else f"{best:.6g}"
        status = f"running {running}  failed {counts['fail']}  pruned {counts['pruned']}  best {best_text}"
        self._progress.update(self._task, completed=done, status=status)

    def print(self, text: str) -> None:
        """Show ``text`` (whole lines) above the bar, or plainly without one."""
        if not text:
            return
        if self._progress is not None:
            self._progress.console.print(text.rstrip("\n"), markup=False, highlight=False)
        elif self._file is not None:
            self._file.write(text)
            self._file.flush()
        else:
            sys.stdout.write(text)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._file is not None:
            self._file.close()
            self._file = None


def _is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False
