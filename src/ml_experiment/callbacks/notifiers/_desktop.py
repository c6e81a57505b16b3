"""``DesktopNotifier``: a pop-up on this machine (``notify-send`` on Linux, ``osascript`` on macOS)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from typing import Any

from ml_experiment.callbacks.notifiers._base import NotificationError, NotifierBase

logger = logging.getLogger("ml_experiment.notifiers")

# The message travels as argv items to a script with no string literals: nothing to escape.
_APPLESCRIPT = (
    "on run argv",
    "display notification (item 3 of argv) with title (item 1 of argv) subtitle (item 2 of argv)",
    "end run",
)


def _platform() -> str:
    return sys.platform


class DesktopNotifier(NotifierBase):
    """Show each event as a desktop notification on the machine that runs the job driver.

    Where no mechanism exists (no ``notify-send`` on PATH, Windows, a headless server) a
    warning is logged once and the notifier stays silent.

    Args:
        app_name: The application name shown with the notification.
        timeout: Seconds to wait for the notification command.
        send_message_for_trials: Also report each group trial.
    """

    def __init__(
        self,
        *,
        app_name: str = "ml-experiment",
        timeout: float = 5.0,
        send_message_for_trials: bool = False,
    ) -> None:
        super().__init__(send_message_for_trials=send_message_for_trials)
        self.app_name = app_name
        self.timeout = timeout
        self._warned_unavailable = False

    def _command(self, title: str, body: str) -> tuple[list[str] | None, str]:
        """The argv to run, or None and why there is none."""
        platform = _platform()
        if platform.startswith(("win", "cygwin")):
            return None, "desktop notifications are not supported on Windows"
        if platform == "darwin":
            osascript = shutil.which("osascript")
            if osascript is None:
                return None, "osascript was not found on PATH"
            script = [arg for line in _APPLESCRIPT for arg in ("-e", line)]
            return [osascript, *script, self.app_name, title, body], ""
        notify_send = shutil.which("notify-send")
        if notify_send is None:
            return None, "notify-send was not found on PATH (install libnotify-bin / libnotify)"
        # "--" ends the options: a message starting with "-" is still text.
        return [
            notify_send,
            f"--app-name={self.app_name}",
            "--",
            title,
            *([body] if body else []),
        ], ""

    def send_message(self, msg: str) -> None:
        title, _, body = msg.strip().partition("\n")
        argv, why = self._command(title, body.strip())
        if argv is None:
            if not self._warned_unavailable:
                self._warned_unavailable = True
                logger.warning("DesktopNotifier: %s; desktop notifications are off", why)
            return
        name = os.path.basename(argv[0])
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NotificationError(f"{name} did not run: {type(exc).__name__}: {exc}") from None
        if done.returncode != 0:
            err = " ".join((done.stderr or "").split())[:200]
            raise NotificationError(
                f"{name} exited with status {done.returncode}" + (f": {err}" if err else "")
            )

    def _repr_fields(self) -> dict[str, Any]:
        return {"app_name": self.app_name}
