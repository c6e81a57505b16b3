"""A watcher process that marks a run FAILED when the process running it dies without ending it.

``os._exit``, a segfault in a C extension or SIGKILL skip every ``finally``: without a watcher
the run would stay RUNNING for ever. The watcher holds the read end of a pipe whose write end
only the watched process has; end of file without the word "done" means that process died.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import IO

DIED = (
    "the process running this run died before ending it (os._exit, a crash or SIGKILL); "
    "the console log and the metrics it had not yet written are lost"
)


class Watcher:
    """Started by :func:`watch`; :meth:`release` when the run ended normally."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    def release(self) -> None:
        stdin: IO[bytes] | None = self._proc.stdin
        with contextlib.suppress(OSError, ValueError):
            if stdin is not None:
                stdin.write(b"done\n")
                stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)


def watch(run_id: str, tracking_uri: str) -> Watcher | None:
    """Start watching this process for ``run_id``; ``None`` where no process can be started."""
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ml_experiment.tracking._watch", tracking_uri, run_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C for the terminal's group is not for the watcher
        )
    except OSError:
        return None
    return Watcher(proc)


def main(argv: list[str]) -> int:
    tracking_uri, run_id = argv
    if sys.stdin.buffer.read().startswith(b"done"):
        return 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_tag(run_id, "error", DIED)
        client.set_terminated(run_id, "FAILED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
