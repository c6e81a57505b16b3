"""The hardware environment of a run: CPU, memory and NVIDIA GPUs (through NVML)."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import subprocess
import sys
from typing import Any

__all__ = ["hardware_info"]

_GIB = 1024**3


def hardware_info() -> dict[str, str]:
    """Describe the machine's CPU, memory and GPUs.

    Keys: ``cpu_model``, ``cpu_logical_cores``, ``cpu_physical_cores``, ``memory_total_gb`` and
    ``gpu_count``; with NVIDIA GPUs also ``gpu_driver_version``, ``gpu_cuda_version`` and per GPU
    ``gpu.{i}.name`` / ``gpu.{i}.memory_total_gb``; ``cuda_visible_devices`` when that variable is
    set (NVML lists every GPU of the machine, not only the visible ones). Sizes are in GiB with two
    decimals. Computed once per process; never raises.

    Returns:
        A fresh dict of strings (safe to modify).
    """
    return dict(_hardware_info())


@functools.cache
def _hardware_info() -> dict[str, str]:
    info: dict[str, str] = {"cpu_model": _cpu_model()}
    info.update(_cpu_memory())
    info.update(_gpus())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        info["cuda_visible_devices"] = visible
    return info


def _cpu_model() -> str:
    try:
        if sys.platform.startswith("linux"):
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    key, sep, value = line.partition(":")
                    if (
                        sep
                        and value.strip()
                        and key.strip() in ("model name", "Model", "cpu model")
                    ):
                        return value.strip()
        elif sys.platform == "darwin":
            result = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            if result.returncode == 0 and result.stdout.strip():
                return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine() or "unknown"


def _cpu_memory() -> dict[str, str]:
    try:
        import psutil
    except ImportError:  # psutil is a dependency; degrade anyway rather than fail a run
        return {
            "cpu_logical_cores": str(os.cpu_count() or "unknown"),
            "cpu_physical_cores": "unknown",
            "memory_total_gb": "unknown",
        }
    info = {
        "cpu_logical_cores": str(psutil.cpu_count(logical=True) or "unknown"),
        "cpu_physical_cores": str(psutil.cpu_count(logical=False) or "unknown"),
    }
    try:
        info["memory_total_gb"] = f"{psutil.virtual_memory().total / _GIB:.2f}"
    except Exception:
        info["memory_total_gb"] = "unknown"
    return info


def _gpus() -> dict[str, str]:
    try:
        import pynvml  # from nvidia-ml-py
    except ImportError:
        return {"gpu_count": "0"}
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver / no GPU: NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return {"gpu_count": "0"}
    try:
        count = int(pynvml.nvmlDeviceGetCount())
        info: dict[str, str] = {"gpu_count": str(count)}
        driver = _nvml(pynvml.nvmlSystemGetDriverVersion)
        if driver is not None:
            info["gpu_driver_version"] = _str(driver)
        cuda = _nvml(pynvml.nvmlSystemGetCudaDriverVersion)
        if cuda:
            # NVML encodes CUDA 12.4 as 12040.
            info["gpu_cuda_version"] = f"{int(cuda) // 1000}.{int(cuda) % 1000 // 10}"
        for i in range(count):
            handle = _nvml(pynvml.nvmlDeviceGetHandleByIndex, i)
            if handle is None:
                continue
            name = _nvml(pynvml.nvmlDeviceGetName, handle)
            if name is not None:
                info[f"gpu.{i}.name"] = _str(name)
            memory = _nvml(pynvml.nvmlDeviceGetMemoryInfo, handle)
            if memory is not None:
                info[f"gpu.{i}.memory_total_gb"] = f"{memory.total / _GIB:.2f}"
        return info
    except Exception:
        return {"gpu_count": "0"}
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _nvml(function: Any, *args: Any) -> Any:
    """Call one NVML query; None when this GPU / driver does not support it."""
    try:
        return function(*args)
    except Exception:
        return None


def _str(value: Any) -> str:
    # nvidia-ml-py < 11.515 returned bytes.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
