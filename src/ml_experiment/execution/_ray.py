"""The Ray session of a group: join a cluster or start a private local one; how many trials fit."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from ml_experiment.exceptions import ConfigError


@contextlib.contextmanager
def ray_session(config: Any) -> Iterator[None]:
    """Use the running Ray session, join ``ray_config.address``, or start a private local one."""
    import ray

    if ray.is_initialized():
        yield
        return
    rc = config.ray_config
    kwargs: dict[str, Any] = {"log_to_driver": True, "configure_logging": False}
    kwargs.update(rc.init_kwargs())
    temp_dir = None
    if rc.address:
        ray.init(address=rc.address, **kwargs)
    else:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if "_temp_dir" not in kwargs:
            # Not /tmp/ray: that may belong to another cluster on this host.
            temp_dir = tempfile.mkdtemp(prefix="mlx-ray-")
            kwargs["_temp_dir"] = temp_dir
        kwargs.setdefault("include_dashboard", False)
        ray.init(
            address="local",
            num_cpus=rc.num_cpus or os.cpu_count() or 1,
            num_gpus=rc.num_gpus,
            **kwargs,
        )
    try:
        yield
    finally:
        ray.shutdown()
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)


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
