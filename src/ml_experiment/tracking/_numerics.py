"""What changes floating-point results besides the code: variables, BLAS/OpenMP, CPU and GPU.

Two runs of the same code and seed can differ in the last bits when the thread counts, the BLAS
library or the CPU's vector instructions differ; ``reproduce`` uses this part of the record to
explain such a difference.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# Variables read by the numerical libraries (exact names, then prefixes).
FLOAT_ENV = (
    "PYTHONHASHSEED",
    "CUDA_VISIBLE_DEVICES",
    "CUBLAS_WORKSPACE_CONFIG",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NVIDIA_TF32_OVERRIDE",
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_NUM_INTEROP_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_XLA_FLAGS",
    "XLA_FLAGS",
)
FLOAT_ENV_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "GOTO_", "KMP_", "BLIS_")


def float_env() -> dict[str, str]:
    """The set environment variables that change numerical results."""
    return {
        k: v
        for k, v in sorted(os.environ.items())
        if k in FLOAT_ENV or k.startswith(FLOAT_ENV_PREFIXES)
    }


def threadpools() -> list[dict[str, Any]]:
    """BLAS and OpenMP libraries loaded in this process, with their versions and thread counts."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # a dependency of scikit-learn; absent only in unusual installs
        return []
    keep = ("user_api", "internal_api", "version", "num_threads", "threading_layer", "architecture")
    try:
        found = [
            {k: info[k] for k in keep if info.get(k) is not None} for info in threadpool_info()
        ]
    except Exception:  # a library that cannot be queried must not fail the run
        return []
    return sorted(found, key=lambda p: json.dumps(p, sort_keys=True, default=str))


def cpu_flags() -> str:
    """The CPU's instruction-set flags (sorted, space-separated), or "" when unknown."""
    try:
        if sys.platform.startswith("linux"):
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    key, sep, value = line.partition(":")
                    if sep and key.strip() in ("flags", "Features"):
                        return " ".join(sorted(set(value.split())))
        elif sys.platform == "darwin":
            import subprocess

            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout
            return " ".join(sorted(set(out.lower().split())))
    except Exception:
        pass
    return ""


def numerics_info(hardware: dict[str, str] | None = None) -> dict[str, Any]:
    """The float-affecting environment of this process, as stored in ``environment/numerics.json``.

    Args:
        hardware: The run's hardware part, for the GPU and driver (``gpu*`` keys).
    """
    gpu = {k: v for k, v in (hardware or {}).items() if k.startswith(("gpu", "cuda"))}
    pools = threadpools()  # first: loading the OpenMP runtimes may set KMP_* variables
    return {"env": float_env(), "threadpools": pools, "cpu_flags": cpu_flags(), "gpu": gpu}


def numerics_tags(info: dict[str, Any]) -> dict[str, str]:
    """Tags (under ``numerics.``) for the parts of ``info`` short enough to read in the UI."""
    tags = {f"env.{k}": str(v) for k, v in info.get("env", {}).items()}
    pools = [
        f"{p.get('internal_api', p.get('user_api', '?'))} {p.get('version') or ''} "
        f"({p.get('num_threads', '?')} threads)".replace("  ", " ")
        for p in info.get("threadpools", [])
    ]
    if pools:
        tags["threadpools"] = "; ".join(pools)
    return tags
