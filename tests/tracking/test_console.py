import io
import os
import select
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ml_experiment.tracking.console import ConsoleCapture

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file descriptors")


def _capture_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ConsoleCapture")]


def test_captures_python_fd_and_child_process_output(tmp_path):
    log = tmp_path / "logs" / "console.log"
    # One write per line: print() issues two (text, then end), and with PYTHONUNBUFFERED the
    # other stream may legitimately land between them, as on a terminal.
    child = "import sys; sys.stdout.write('child out\\n'); sys.stderr.write('child err\\n')"
    with ConsoleCapture(log, echo=False) as capture:
        sys.stdout.write("from print\n")
        sys.stdout.flush()
        sys.stderr.write("from sys.stderr\n")
        sys.stderr.flush()
        os.write(1, b"from fd 1\n")
        os.write(2, b"from fd 2\n")
        subprocess.run([sys.executable, "-c", child], check=True)
        os.system("echo from os.system")
    assert capture.path == log
    text = log.read_text()
    for expected in (
        "from print\n",
        "from sys.stderr\n",
        "from fd 1\n",
        "from fd 2\n",
        "child out\n",
        "child err\n",
        "from os.system\n",
    ):
        assert expected in text
    assert not _capture_threads()


def _wait_for_log(log, text: str, timeout: float = 30.0) -> None:
    """Until the (unbuffered, live) log holds ``text``: synchronise on output, not on time."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"{text!r} never reached the log"
        time.sleep(0.01)


def test_streams_interleave_in_arrival_order(tmp_path):
    log = tmp_path / "console.log"
    expected = ""
    with ConsoleCapture(log, echo=False):
        for i in range(2):
            for fd, line in ((1, f"out {i}\n"), (2, f"err {i}\n")):
                os.write(fd, line.encode())
                expected += line
                _wait_for_log(log, expected)  # logged before the other stream writes again
    assert log.read_text() == "out 0\nerr 0\nout 1\nerr 1\n"


def test_nothing_outside_the_block_is_captured(tmp_path):
    log = tmp_path / "console.log"
    print("before")
    with ConsoleCapture(log, echo=False):
        print("inside")
    print("after")
    assert log.read_text() == "inside\n"


def test_echo_forwards_to_the_original_streams(tmp_path):
    outer_log, inner_log = tmp_path / "outer.log", tmp_path / "inner.log"
    with ConsoleCapture(outer_log, echo=False):
        with ConsoleCapture(inner_log, echo=True):
            print("echoed out")
            os.write(2, b"echoed err\n")
        with ConsoleCapture(tmp_path / "silent.log", echo=False):
            print("not echoed")
    assert sorted(inner_log.read_text().splitlines()) == ["echoed err", "echoed out"]
    outer = outer_log.read_text()
    assert "echoed out\n" in outer
    assert "echoed err\n" in outer
    assert "not echoed" not in outer
    assert (tmp_path / "silent.log").read_text() == "not echoed\n"


@pytest.mark.timeout(120)
def test_large_output_does_not_deadlock(tmp_path):
    log = tmp_path / "console.log"
    size = 10 * 1024 * 1024
    line = "x" * 1023 + "\n"

    def writer() -> None:
        os.write(2, b"e" * size)

    with ConsoleCapture(log, echo=False):
        thread = threading.Thread(target=writer)
        thread.start()
        sys.stdout.write(line * (size // len(line)))
        sys.stdout.flush()
        subprocess.run([sys.executable, "-c", f"import os; os.write(1, b'c' * {size})"], check=True)
        thread.join()
    data = log.read_bytes()
    assert len(data) == 3 * size
    assert data.count(b"e") == size
    assert data.count(b"c") == size
    assert data.count(b"x") == size // len(line) * 1023
    assert not _capture_threads()


def test_restored_after_exception(tmp_path):
    stdout, stderr = sys.stdout, sys.stderr
    before = [os.fstat(fd) for fd in (1, 2)]
    with pytest.raises(ValueError), ConsoleCapture(tmp_path / "console.log", echo=False):
        print("about to fail")
        raise ValueError("boom")
    after = [os.fstat(fd) for fd in (1, 2)]
    assert [(s.st_dev, s.st_ino) for s in before] == [(s.st_dev, s.st_ino) for s in after]
    assert sys.stdout is stdout
    assert sys.stderr is stderr
    assert (tmp_path / "console.log").read_text() == "about to fail\n"
    assert not _capture_threads()


@posix_only
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_no_file_descriptor_leak(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    for i in range(5):
        with ConsoleCapture(tmp_path / f"{i}.log", echo=True):
            print(i)
    assert len(os.listdir("/proc/self/fd")) == before


def test_python_level_tee_when_streams_have_no_fileno(tmp_path, monkeypatch):
    fake_out, fake_err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", fake_out)
    monkeypatch.setattr(sys, "stderr", fake_err)
    log = tmp_path / "console.log"
    with ConsoleCapture(log, echo=True):
        assert sys.stdout is not fake_out
        print("to the tee")
        print("é to stderr", file=sys.stderr)
        os.write(1, b"fd level\n")
    assert sys.stdout is fake_out
    assert fake_out.getvalue() == "to the tee\n"
    assert fake_err.getvalue() == "é to stderr\n"
    text = log.read_text(encoding="utf-8")
    assert "to the tee\n" in text
    assert "é to stderr\n" in text
    assert "fd level\n" in text


def test_tee_without_echo(tmp_path, monkeypatch):
    fake_out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", fake_out)
    with ConsoleCapture(tmp_path / "console.log", echo=False):
        print("hidden")
    assert fake_out.getvalue() == ""
    assert (tmp_path / "console.log").read_text() == "hidden\n"


@posix_only
def test_closed_stdout_falls_back_and_keeps_working(tmp_path):
    # In a child process: fd 1 is closed, so only the Python-level tee can see print().
    log = tmp_path / "console.log"
    script = textwrap.dedent(
        f"""
        import os, sys
        from ml_experiment.tracking.console import ConsoleCapture
        os.close(1)
        with ConsoleCapture({str(log)!r}, echo=True):
            print("printed with fd 1 closed")
            os.write(2, b"stderr still fine\\n")
        print("done", file=sys.stderr)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = log.read_text()
    assert "printed with fd 1 closed\n" in text
    assert "stderr still fine\n" in text
    assert result.stderr.endswith("done\n")


@posix_only
def test_lingering_child_does_not_block_exit(tmp_path):
    log = tmp_path / "console.log"
    with ConsoleCapture(log, echo=False):
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(300)"]
        )
        _wait_for_log(log, "started\n")
        start = time.monotonic()
    try:
        # Waiting for the child's EOF would take the pumps' 5 s settle timeout (each) or its
        # 300 s; ending without waiting takes milliseconds, well under 5 s even when loaded.
        assert time.monotonic() - start < 5
        assert "started\n" in log.read_text()
    finally:
        child.kill()
        child.wait()


def test_not_reentrant(tmp_path):
    capture = ConsoleCapture(tmp_path / "console.log", echo=False)
    with capture, pytest.raises(RuntimeError, match="already active"):
        capture.__enter__()


def test_usable_from_a_thread(tmp_path):
    log = tmp_path / "console.log"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with ConsoleCapture(log, echo=False):
                os.write(1, b"from a thread\n")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert not errors
    assert log.read_text() == "from a thread\n"


def test_stream_replaced_inside_the_block_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # forces the Python-level tee
    mine = io.StringIO()
    with ConsoleCapture(tmp_path / "console.log", echo=False):
        sys.stdout = mine
    assert sys.stdout is mine


@posix_only
def test_the_last_output_is_logged_when_the_reader_wakes_late(tmp_path, monkeypatch):
    """On a loaded machine the reader may lose the CPU right after an empty poll, and wake only
    once the block has ended: what was written before the end is still logged."""
    import types

    import ml_experiment.tracking.console as console

    def late_select(r, w, x, timeout):
        ready = select.select(r, w, x, timeout)
        if not ready[0]:
            time.sleep(0.3)  # descheduled between the empty poll and its next step
        return ready

    monkeypatch.setattr(console, "select", types.SimpleNamespace(select=late_select))
    for attempt in range(4):
        log = tmp_path / f"console-{attempt}.log"
        with ConsoleCapture(log, echo=False):
            time.sleep(0.08)  # the reader's first poll came back empty: it is "asleep"
            os.write(1, b"the last line\n")
        assert log.read_text() == "the last line\n", attempt
