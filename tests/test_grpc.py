"""gRPC's fork handlers off: a process with a busy gRPC channel starts programs safely.

With them on (grpcio 1.81 and later, grpc/grpc#43055) a child that Python's ``subprocess``
forks to run a ``preexec_fn`` (as Ray starts each of its processes) aborts before it execs a
few times in a hundred; Ray then waits 30 s for a process that never ran.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

FORKS = """
import subprocess, sys, threading
from concurrent import futures

from ml_experiment._grpc import fork_handlers_off

fork_handlers_off()
import grpc

server = grpc.server(futures.ThreadPoolExecutor(2))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
channel = grpc.insecure_channel(f"127.0.0.1:{port}")
call = channel.unary_unary("/ml_experiment.Test/Nothing")
done = threading.Event()


def busy():  # RPCs all along, as a study's reports through Optuna's gRPC proxy
    while not done.is_set():
        try:
            call(b"", timeout=0.5)
        except grpc.RpcError:
            pass


threading.Thread(target=busy, daemon=True).start()


def preexec():  # what Ray runs in each child it starts: Python after fork, before exec
    pass


codes = [subprocess.Popen(["true"], preexec_fn=preexec).wait() for _ in range(int(sys.argv[1]))]
done.set()
print(sorted(set(codes)))
"""


def test_busy_grpc_channel_does_not_kill_children_started_with_a_preexec_fn() -> None:
    pytest.importorskip("grpc")
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    res = subprocess.run(
        [sys.executable, "-c", FORKS, "200"], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[0]", res.stderr[-2000:]  # -6: a child aborted (SIGABRT)
