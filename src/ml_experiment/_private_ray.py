"""Ray's private internals, each gated (see :mod:`ml_experiment._private` for MLflow's).

A private local node started by ``ray.init`` without what such a node does not use
(``quick_local_ray``): 1-2 s of its start on 2 cores, and ~170 MiB. Without the dashboard,
Ray's API server process loads its usage-stats module alone (reporting is off for a group's
node), yet ``ray.init`` polls until it is up; the autoscaler's monitor has nothing to scale;
the log monitor forwards workers' output only to a driver that asked for it (``-v``). Ray
checks that its dashboard's dependencies import by importing them in the driver (0.4 s before
the raylet starts): they are looked up instead. And ``ray.init`` asks the GCS whether the
raylet has registered once a second (a fixed sleep in its C++ accessor), so it may wait a
second more than the raylet takes: the node is first awaited by asking every 20 ms. Tested
on the Ray releases in :data:`RAY_TESTED`; elsewhere ``ray.init`` runs as it is (slower),
without a warning.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from typing import Any

from ml_experiment._private import installed_in

# Ray's range is wider in pyproject.toml (a cluster's Ray decides the client's): only the start
# of a private local node is quicker on these.
RAY_TESTED = ("2.60", "2.61")


def _ray_tested() -> bool:
    return installed_in("ray", *RAY_TESTED)[0]


@contextlib.contextmanager
def quick_local_ray(log_to_driver: bool) -> Iterator[None]:
    """Around ``ray.init`` of a private local node: see the module's docstring."""
    try:
        if not _ray_tested():
            raise ImportError
        from ray._private import node, services, utils

        patches = [
            (services, "start_api_server", functools.partial(_no_api_server, services.start_api_server)),
            (services, "get_node", functools.partial(_get_node_soon, services.get_node)),
            (utils, "get_dashboard_dependency_error", _dashboard_dependency_error),
            (node.Node, "start_monitor", _not_started),
        ]  # fmt: skip
        if not log_to_driver:
            patches.append((node.Node, "start_log_monitor", _not_started))
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    except (ImportError, AttributeError):
        yield
        return
    for owner, name, value in patches:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _not_started(self: Any) -> None:
    return None


def _dashboard_dependency_error() -> ImportError | None:
    # What ray.dashboard.optional_deps imports (ray[default]), looked up rather than imported.
    import importlib.util

    names = (
        "aiohttp", "aiohttp_cors", "grpc", "opencensus", "opentelemetry.exporter.prometheus",
        "prometheus_client",
    )  # fmt: skip
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    return ImportError(f"not installed: {', '.join(missing)}") if missing else None


def _no_api_server(start: Any, include_dashboard: bool | None, *args: Any, **kwargs: Any) -> Any:
    if include_dashboard is False:
        return "", None  # Ray's own value for "no dashboard URL", and no process to track
    return start(include_dashboard, *args, **kwargs)


def _get_node_soon(get_node: Any, gcs_address: str, node_id: str) -> Any:
    try:
        from ray._raylet import GcsClient  # type: ignore[attr-defined]
        from ray.core.generated.gcs_pb2 import GcsNodeInfo  # type: ignore[attr-defined]

        client = GcsClient(address=gcs_address)
        alive = GcsNodeInfo.GcsNodeState.ALIVE
        deadline = time.monotonic() + 30  # Ray's raylet_start_wait_time_s
        while time.monotonic() < deadline:
            nodes = client.get_all_node_info(timeout=5, state_filter=alive)
            if any(nid.hex() == node_id for nid in nodes):
                break
            time.sleep(0.02)
    except Exception:  # Ray's own wait, next, says what is wrong, if anything
        pass
    return get_node(gcs_address, node_id)
