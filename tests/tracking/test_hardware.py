import platform
import sys
import types

import psutil
import pytest

from ml_experiment.tracking import hardware
from ml_experiment.tracking.hardware import hardware_info


@pytest.fixture(autouse=True)
def fresh_cache():
    hardware._hardware_info.cache_clear()
    yield
    hardware._hardware_info.cache_clear()


def test_cpu_and_memory():
    info = hardware_info()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in info.items())
    assert info["cpu_model"]
    assert info["cpu_logical_cores"] == str(psutil.cpu_count(logical=True))
    assert int(info["cpu_physical_cores"]) >= 1
    total = float(info["memory_total_gb"])
    assert total == pytest.approx(psutil.virtual_memory().total / 1024**3, abs=0.01)
    assert info["memory_total_gb"].count(".") == 1
    assert len(info["memory_total_gb"].split(".")[1]) == 2
    assert int(info["gpu_count"]) >= 0


def test_cached_per_process_and_copy_returned():
    first = hardware_info()
    first["cpu_model"] = "changed"
    second = hardware_info()
    assert second["cpu_model"] != "changed"
    assert hardware._hardware_info.cache_info().hits >= 1


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"),
    reason="x86 Linux names its CPU in /proc/cpuinfo's 'model name' lines",
)
def test_cpu_model_from_proc_cpuinfo():
    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    assert names, "x86 Linux without a 'model name' line in /proc/cpuinfo"
    assert hardware_info()["cpu_model"] == names[0]


def _fake_pynvml(*, fail_init: bool = False, count: int = 2) -> types.ModuleType:
    module = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    calls: list[str] = []

    def init():
        calls.append("init")
        if fail_init:
            raise NVMLError("Driver Not Loaded")

    memory = types.SimpleNamespace(total=80 * 1024**3)
    module.NVMLError = NVMLError
    module.calls = calls
    module.nvmlInit = init
    module.nvmlShutdown = lambda: calls.append("shutdown")
    module.nvmlDeviceGetCount = lambda: count
    module.nvmlSystemGetDriverVersion = lambda: b"550.54.15"  # old bindings return bytes
    module.nvmlSystemGetCudaDriverVersion = lambda: 12040
    module.nvmlDeviceGetHandleByIndex = lambda i: f"handle{i}"
    module.nvmlDeviceGetName = lambda handle: f"NVIDIA H100 80GB HBM3 ({handle})"
    module.nvmlDeviceGetMemoryInfo = lambda handle: memory
    return module


def test_gpus_through_nvml(monkeypatch):
    fake = _fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    info = hardware_info()
    assert info["gpu_count"] == "2"
    assert info["gpu_driver_version"] == "550.54.15"
    assert info["gpu_cuda_version"] == "12.4"
    assert info["gpu.0.name"] == "NVIDIA H100 80GB HBM3 (handle0)"
    assert info["gpu.1.memory_total_gb"] == "80.00"
    assert info["cuda_visible_devices"] == "1"
    assert fake.calls == ["init", "shutdown"]


def test_one_failing_query_does_not_lose_the_rest(monkeypatch):
    fake = _fake_pynvml(count=1)

    def no_cuda():
        raise fake.NVMLError("Not Supported")

    fake.nvmlSystemGetCudaDriverVersion = no_cuda
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    info = hardware_info()
    assert "gpu_cuda_version" not in info
    assert info["gpu.0.name"].startswith("NVIDIA H100")


def test_no_driver_means_zero_gpus(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(fail_init=True))
    info = hardware_info()
    assert info["gpu_count"] == "0"
    assert not any(key.startswith("gpu.") for key in info)


def test_no_pynvml_means_zero_gpus(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    assert hardware_info()["gpu_count"] == "0"


def test_per_gpu_entries_for_every_device_nvml_lists(monkeypatch):
    # The per-GPU loop, on the suite's fake NVML: one name and size per listed device, no more.
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(count=3))
    info = hardware_info()
    gpu_keys = sorted(k for k in info if k.startswith("gpu."))
    assert gpu_keys == sorted(f"gpu.{i}.{f}" for i in range(3) for f in ("name", "memory_total_gb"))
    assert [info[f"gpu.{i}.name"] for i in range(3)] == [
        f"NVIDIA H100 80GB HBM3 (handle{i})" for i in range(3)
    ]


def test_real_nvml_never_raises():
    # Whatever this machine has (nvidia-ml-py or not, a driver or not): the count NVML reports
    # itself, or "0", and one entry per GPU.
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            expected = int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no bindings, no driver: hardware_info must say 0
        expected = 0
    info = hardware_info()
    assert info["gpu_count"] == str(expected)
    assert len([k for k in info if k.startswith("gpu.") and k.endswith(".name")]) == expected
    for i in range(expected):
        assert info[f"gpu.{i}.name"]
        assert float(info[f"gpu.{i}.memory_total_gb"]) > 0
