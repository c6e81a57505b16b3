"""Capture a run's console output (stdout + stderr) into a log file, like a terminal would show it.

Capture happens at the file-descriptor level: fds 1 and 2 are pointed at pipes drained by reader
threads, so output of C extensions and child processes (subprocess, os.system) is captured too.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

__all__ = ["ConsoleCapture"]

_CHUNK = 1 << 16
_POLL_S = 0.05  # how often an idle reader checks whether the block has ended
_SETTLE_S = 5.0  # at most this long on exit to drain what is still in the pipes
_CAN_POLL = os.name == "posix"  # select() on pipes does not work on Windows


class ConsoleCapture:
    """Context manager that tees stdout and stderr of the whole process into one log file.

    Both streams are interleaved in arrival order, untagged. With ``echo`` the output still reaches
    the original stdout / stderr. Where fds 1 / 2 cannot be redirected, or ``sys.stdout`` /
    ``sys.stderr`` do not write to them (Jupyter, pytest), a Python-level tee of those objects is
    used as well.

    Child processes still running after the block (and holding the pipe) are not waited for: their
    later output is only echoed, not logged.

    Args:
        path: The log file (created with its folders, overwritten).
        echo: Also forward the output to the original stdout / stderr.
    """

    def __init__(self, path: str | Path, *, echo: bool = True) -> None:
        self._path = Path(path)
        self._echo = echo
        self._lock = threading.Lock()
        self._log: BinaryIO | None = None
        self._pumps: list[_Pump] = []
        self._redirects: list[tuple[int, int]] = []  # (fd, saved duplicate of the original)
        self._tees: list[tuple[str, Any, _Tee]] = []  # (sys attribute, original, tee)
        self._active = False

    @property
    def path(self) -> Path:
        """The log file."""
        return self._path

    def __enter__(self) -> ConsoleCapture:
        if self._active:
            raise RuntimeError("This ConsoleCapture is already active; create a new one.")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self._path, "wb", buffering=0)  # unbuffered: the log is live
        self._active = True
        try:
            _flush_all()
            _flush_c_stdio()
            for fd, name in ((1, "stdout"), (2, "stderr")):
                redirected = _fd_usable(fd) and self._redirect(fd)
                stream = getattr(sys, name)
                if not (redirected and _fileno(stream) == fd):
                    # Python-level writes would bypass the fd: tee the object too.
                    tee = _Tee(stream, self._write_log, self._echo)
                    self._tees.append((name, stream, tee))
                    setattr(sys, name, tee)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._restore()

    def _redirect(self, fd: int) -> bool:
        opened: list[int] = []  # closed again if anything fails

        def high(new_fd: int) -> int:
            opened.append(new_fd)
            opened[-1] = _high(new_fd)
            return opened[-1]

        try:
            saved = high(os.dup(fd))
            pipe_read, pipe_write = os.pipe()
            opened.append(pipe_write)
            read_fd = high(pipe_read)
            opened.remove(pipe_write)
            write_fd = high(pipe_write)
            echo_fd = high(os.dup(saved)) if self._echo else None  # the pump owns its copy
            os.dup2(write_fd, fd)  # inheritable, so child processes write into the pipe too
        except OSError:
            for opened_fd in opened:
                with contextlib.suppress(OSError):
                    os.close(opened_fd)
            return False
        os.close(write_fd)
        self._redirects.append((fd, saved))
        pump = _Pump(read_fd, echo_fd, self._write_log, name=f"ConsoleCapture-fd{fd}")
        self._pumps.append(pump)
        pump.start()
        return True

    def _write_log(self, data: bytes) -> None:
        with self._lock:
            if self._log is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._log.write(data)

    def _restore(self) -> None:
        if not self._active:
            return
        self._active = False
        try:
            _flush_all()
            _flush_c_stdio()
        finally:
            for name, original, tee in reversed(self._tees):
                if getattr(sys, name) is tee:  # else the user replaced it: theirs stays
                    setattr(sys, name, original)
            self._tees.clear()
            for fd, saved in reversed(self._redirects):
                # Closes our end of the pipe in fd: the pump sees EOF once children are done too.
                with contextlib.suppress(OSError):
                    os.dup2(saved, fd)
                with contextlib.suppress(OSError):
                    os.close(saved)
            self._redirects.clear()
            for pump in self._pumps:
                pump.finish(_SETTLE_S)
            self._pumps.clear()
            with self._lock:
                log, self._log = self._log, None
            if log is not None:
                log.close()


class _Pump(threading.Thread):
    """Drains one pipe into the log (and the original fd) until EOF."""

    def __init__(self, read_fd: int, echo_fd: int | None, write_log: Any, *, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._read_fd = read_fd
        self._echo_fd = echo_fd
        self._write_log = write_log
        self._closing = threading.Event()
        self._settled = threading.Event()  # everything written during the block is logged

    def run(self) -> None:
        try:
            self._loop()
        except Exception:  # never print from here: it would write into our own pipe
            pass
        finally:
            self._settled.set()
            with contextlib.suppress(OSError):
                os.close(self._read_fd)
            if self._echo_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._echo_fd)

    def _loop(self) -> None:
        logging = True
        while True:
            if logging and _CAN_POLL:
                # The end is read before polling: all written before it is then in the pipe. Read
                # after an empty poll, a late wake-up would drop what came in between.
                closing = self._closing.is_set()
                ready, _, _ = select.select([self._read_fd], [], [], 0 if closing else _POLL_S)
                if not ready:
                    if closing:
                        # Block over, pipe empty, yet a writer remains (a lingering child):
                        # stop logging, keep forwarding its output until it exits.
                        logging = False
                        self._settled.set()
                    continue
            data = os.read(self._read_fd, _CHUNK)
            if not data:
                return
            if logging and not self._settled.is_set():
                self._write_log(data)
            if self._echo_fd is not None:
                try:
                    _write_all(self._echo_fd, data)
                except OSError:  # original stream closed: keep draining so writers never block
                    self._echo_fd = None

    def finish(self, timeout: float) -> None:
        self._closing.set()
        self._settled.wait(timeout)
        # A lingering child may keep the thread alive; it is a daemon and owns its fds.
        self.join(timeout=0.1 if self.is_alive() and self._settled.is_set() else timeout)
        self._settled.set()  # after a timeout, stop writing to the (soon closed) log


class _Tee:
    """Python-level stand-in for ``sys.stdout`` / ``sys.stderr`` that copies writes to the log."""

    def __init__(self, original: Any, write_log: Any, echo: bool) -> None:
        self._original = original
        self._write_log = write_log
        self._echo = echo
        self._encoding = getattr(original, "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        if self._echo and self._original is not None:
            # A broken original stream must not stop the log (or the run).
            with contextlib.suppress(OSError, ValueError):
                self._original.write(text)
        self._write_log(text.encode(self._encoding, "backslashreplace"))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._original is not None:
            with contextlib.suppress(Exception):
                self._original.flush()

    def __getattr__(self, name: str) -> Any:
        if self._original is None:
            raise AttributeError(name)
        return getattr(self._original, name)


def _high(fd: int) -> int:
    """Move ``fd`` above 2: with fd 1 or 2 closed, a new fd would otherwise take its number."""
    if fd > 2 or os.name != "posix":
        return fd
    import fcntl

    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)  # only once the copy exists: on failure the caller still owns fd
    return high


def _fd_usable(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except Exception:  # None, io.UnsupportedOperation, closed file, ...
        return None


def _flush_all() -> None:
    seen: set[int] = set()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None and id(stream) not in seen:
            seen.add(id(stream))
            with contextlib.suppress(Exception):
                stream.flush()


def _flush_c_stdio() -> None:
    # C extensions printing with printf keep data in libc's buffers; push it into the pipe.
    if os.name != "posix":
        return
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
