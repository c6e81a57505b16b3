"""The group progress bar: only on a terminal, written past the console capture."""

from __future__ import annotations

import os
import sys
from typing import Any


class GroupProgress:
    """Trials done / total, running, failed, pruned and the best value so far."""

    def __init__(self, name: str, total: int) -> None:
        self.name = name
        self.total = total
        self._progress: Any = None
        self._task: Any = None
        self.enabled = _is_terminal() and not os.environ.get("ML_EXPERIMENT_NO_PROGRESS")
        self._file: Any = None
        if self.enabled:
            # A duplicate of the terminal fd, taken before the console capture redirects fd 1,
            # so the bar's redraws do not end up in the run's console log.
            self._file = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)

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
