"""The group driver's ordered background writer."""

from __future__ import annotations

import threading

import pytest

from ml_experiment.execution._writer import BackgroundWriter


def test_writes_run_in_order_off_the_calling_thread() -> None:
    seen: list[tuple[int, str]] = []
    w = BackgroundWriter()
    for i in range(50):
        w.submit(lambda i: seen.append((i, threading.current_thread().name)), i)
    w.close()
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"ml-experiment-writer"}


def test_first_error_is_raised_in_the_driver_and_later_writes_are_skipped() -> None:
    done: list[int] = []
    w = BackgroundWriter()

    def fail() -> None:
        raise OSError("disk full")

    w.submit(done.append, 1)
    w.submit(fail)
    w.submit(done.append, 2)
    with pytest.raises(OSError, match="disk full"):
        w.close()
    assert done == [1]
    with pytest.raises(OSError):
        w.submit(done.append, 3)
