"""``ml-experiment ui``: an MLflow server on the knowledge center, stopped with its command.

The server runs in its own process group so that everything it starts (uvicorn and its
workers) can be stopped together: on Ctrl-C, and on SIGTERM from ``kill`` or a service manager,
which would otherwise end this process and leave the server holding the port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

from ml_experiment.exceptions import Interrupted

__all__ = ["serve"]

_GRACE_S = 10.0  # for the server to stop after SIGTERM before it is killed


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left after a grace period."""
    for sig, wait_s in ((signal.SIGTERM, _GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; its group may still hold children (uvicorn workers).
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted("ml-experiment ui stopped (SIGTERM)", signum=signum)


def serve(cmd: list[str], env: dict[str, str]) -> int:
    """Run the server command until it ends, Ctrl-C (exit 0) or SIGTERM (exit 143)."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return proc.wait()
    except Interrupted as exc:
        _stop(proc)
        print(exc.message, file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(proc)  # also on Ctrl-C (the server is in another group) and on any error
