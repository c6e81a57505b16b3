"""The warm path's floor: a bare driver joins the same head with the same ``working_dir`` and runs
one no-op task, with nothing else in the process. Prints when that task started (epoch seconds);
the harness counts from the command's launch (``bench_startup``)."""

from __future__ import annotations

import sys
import time

import ray


def now() -> float:
    return time.time()


def main() -> None:
    address, working_dir = sys.argv[1], sys.argv[2]
    ray.init(
        address=address,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"working_dir": working_dir, "excludes": ["__pycache__/", "*.pyc"]},
    )
    started = ray.get(ray.remote(num_cpus=1)(now).remote())
    print(f"first_task {started}", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
