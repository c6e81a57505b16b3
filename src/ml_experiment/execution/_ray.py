"""The Ray session of a group: join a cluster or start a private local one; how many trials fit."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import warnings
from collections.abc import Iterator
from typing import Any

from ml_experiment._grpc import fork_handlers_off
from ml_experiment._output import VERBOSE, settle, verbosity
from ml_experiment._private_ray import quick_local_ray
from ml_experiment.exceptions import ConfigError

# Ray decides once, when imported, whether a node may be reached from other hosts; "0" makes a
# local node use 127.0.0.1 throughout (its mode on macOS and Windows), so nothing listens on a
# non-loopback interface. Read by Ray in this process and in every process it starts.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def _loopback_unless_joining(rc: Any) -> None:
    if not rc.address:
        for key, value in LOOPBACK_ENV.items():
            os.environ.setdefault(key, value)


def check_init_kwargs(config: Any) -> None:
    """``ray_config``'s extra keys must be ``ray.init`` arguments: bad input before anything starts.

    Ray refuses unknown ones itself, but only once the group's store, study and parent run exist.
    Its private ``_name`` arguments, and a Ray client's (``ray://``), are left to Ray.
    """
    rc = config.ray_config
    extra = [k for k in rc.init_kwargs() if not k.startswith("_")]
    if not extra or str(rc.address or "").startswith("ray://"):
        return
    import inspect

    _loopback_unless_joining(rc)
    import ray

    known = inspect.signature(ray.init).parameters
    for key in extra:
        if key not in known or known[key].kind is inspect.Parameter.VAR_KEYWORD:
            raise ConfigError(
                f"{key!r} is not an argument of ray.init (Ray {ray.__version__})",
                source=getattr(config, "source", None),
                field=f"ray_config.{key}",
            )


@contextlib.contextmanager
def ray_session(config: Any) -> Iterator[None]:
    """Use the running Ray session, join ``ray_config.address``, or start a private local one.

    A local one listens on loopback only, without dashboard, in a private 0700 temp folder
    (``mlx-ray-*``); such folders left by killed runs are removed first.
    """
    rc = config.ray_config
    _loopback_unless_joining(rc)
    fork_handlers_off()
    import ray

    settle()  # importing Ray set its loggers up anew

    if ray.is_initialized():
        yield
        return
    kwargs: dict[str, Any] = {
        # Trial output comes back with each trial ([trial N] lines); Ray's own forwarding,
        # with its (execute_trial pid=...) prefixes, only with -v.
        "log_to_driver": verbosity() == VERBOSE,
        "configure_logging": False,
    }
    kwargs.update(rc.init_kwargs())
    temp_dir = None
    try:  # a failed start too leaves neither Ray's processes nor its folder
        if rc.address:
            check_reachable(config)
            ship_code(config, kwargs)
            ray.init(address=rc.address, **kwargs)
        else:
            from ml_experiment._tmp import make_private_dir, remove_stale

            remove_stale()  # mlx-* folders whose owner was killed (SIGKILL leaves them)
            if "_temp_dir" not in kwargs:
                # Not /tmp/ray: that may belong to another cluster on this host. Ray makes its own
                # folder 0777, so it goes inside one of ours (0700).
                temp_dir = make_private_dir("mlx-ray-")
                kwargs["_temp_dir"] = str(temp_dir / "ray")
            kwargs.setdefault("include_dashboard", False)
            kwargs.setdefault("_node_ip_address", "127.0.0.1")
            with quick_local_ray(kwargs["log_to_driver"]):
                ray.init(
                    address="local",
                    num_cpus=rc.num_cpus or os.cpu_count() or 1,
                    num_gpus=rc.num_gpus,
                    **kwargs,
                )
            node_ip = ray.util.get_node_ip_address()
            if node_ip not in ("127.0.0.1", "::1"):
                # Ray was imported before this session set LOOPBACK_ENV: say so, do not hide it.
                warnings.warn(
                    f"the local Ray node listens on {node_ip}, not on loopback only: set "
                    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before Ray is imported",
                    stacklevel=2,
                )
        yield
    finally:
        ray.shutdown()
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)


def check_reachable(config: Any, timeout: float = 5.0) -> None:
    """Joining ``host:port``: something must answer there; ``ray.init`` would wait without end.

    Checked where Ray will connect (it replaces a loopback host with this node's address).
    ``auto`` and ``ray://`` addresses are left to Ray.
    """
    import socket

    address = str(config.ray_config.address)
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return
    try:
        from ray._private.services import canonicalize_bootstrap_address

        host, _, port = str(canonicalize_bootstrap_address(address) or address).rpartition(":")
    except Exception:  # Ray's own init says what is wrong with the address
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"nothing answers at {address} ({host}:{port}): {exc.strerror or exc}",
            source=getattr(config, "source", None),
            field="ray_config.address",
        ) from None


# Never shipped to a cluster with the code: the knowledge center, version control, outputs.
SHIP_EXCLUDES = [
    "mlruns.db*", "mlartifacts/", "optuna-studies.journal*", ".git/", "reports/", "*.pyc",
    ".venv/", "__pycache__/",
]  # fmt: skip


def code_dir(config: Any) -> str:
    """The folder holding every script of the job (what a cluster's workers import from)."""
    return os.path.commonpath([os.path.dirname(str(script)) for script in config.run])


def ship_code(config: Any, kwargs: dict[str, Any]) -> None:
    """Joining a cluster: the scripts' folder goes to every worker as Ray's working_dir.

    Workers on other machines share no disk with the driver; Ray uploads the folder once per
    job and starts each worker in its copy. A working_dir given in ``ray_config`` is kept.
    """
    env = dict(kwargs.get("runtime_env") or {})
    if "working_dir" not in env:
        env["working_dir"] = code_dir(config)
        env["excludes"] = [*env.get("excludes", []), *SHIP_EXCLUDES]
    kwargs["runtime_env"] = env


def slots(config: Any) -> int:
    """How many trials fit at once in the cluster with ``resources_per_worker``."""
    import ray

    res = ray.cluster_resources()
    need = config.resources_per_worker
    slots = math.floor(res.get("CPU", 0) / need.cpu + 1e-9)
    if need.gpu > 0:
        slots = min(slots, math.floor(res.get("GPU", 0) / need.gpu + 1e-9))
    if slots < 1:
        raise ConfigError(
            f"one worker needs cpu={need.cpu}, gpu={need.gpu} but the cluster has "
            f"CPU={res.get('CPU', 0)}, GPU={res.get('GPU', 0)}",
            source=config.source,
            field="resources_per_worker",
        )
    return int(slots)
