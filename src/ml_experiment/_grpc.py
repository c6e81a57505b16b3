"""gRPC in a process that starts other programs: its fork handlers off (grpc/grpc#43055).

grpcio's handlers restart its poller in a forked child. A child forked only to exec another
program (Python's ``subprocess`` with a ``preexec_fn``, which is how Ray starts each of its
processes) may then abort with SIGABRT before it execs ("epoll_wait error: Bad file descriptor"),
when a gRPC channel is busy in the parent. A group whose study went through Optuna's gRPC proxy
lost Ray's GCS that way, and ``ray.init`` waited 30 s for a port file that never came. Nothing
here uses gRPC in a forked child, so the handlers are turned off; grpcio reads the variable
once, when first imported. A value the user set is kept.
"""

from __future__ import annotations

import os

FORK_SUPPORT_ENV = "GRPC_ENABLE_FORK_SUPPORT"


def fork_handlers_off() -> None:
    """Before grpcio is first imported (Ray's start imports it; so does Optuna's gRPC proxy)."""
    os.environ.setdefault(FORK_SUPPORT_ENV, "false")
