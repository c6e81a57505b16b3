"""``deterministic: true``: the known switches for bit-identical re-runs, applied and recorded.

Applied in the driver before the function runs and in every worker before each trial. Only what
the libraries document is used: a fixed hash seed for new processes, cuBLAS's workspace setting,
PyTorch's deterministic algorithms (cuDNN deterministic, no benchmark), TensorFlow op determinism.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from ml_experiment.tracking.record import TAG_DETERMINISTIC, TAG_DETERMINISTIC_APPLIED

ENV = {
    "PYTHONHASHSEED": "0",
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # cuBLAS reproducibility (CUDA >= 10.2)
    "TF_DETERMINISTIC_OPS": "1",  # read by TensorFlow when it is imported
}


def prepare_environment() -> None:
    """Set the variables new processes (Ray workers, subprocesses) read; user values are kept."""
    for key, value in ENV.items():
        os.environ.setdefault(key, value)


def apply_determinism() -> list[str]:
    """Apply every switch available in this process; return what was applied."""
    prepare_environment()
    applied = []
    if sys.flags.hash_randomization == 0 or os.environ.get("PYTHONHASHSEED") == "0":
        fixed_here = sys.flags.hash_randomization == 0
        applied.append("PYTHONHASHSEED=" + os.environ["PYTHONHASHSEED"])
        if not fixed_here:
            applied[-1] += " (new processes; this one started without it)"
    applied.append("CUBLAS_WORKSPACE_CONFIG=" + os.environ["CUBLAS_WORKSPACE_CONFIG"])
    # torch is imported here when installed (once per process, ~1 s): its switches must be on
    # before the function's first operation, wherever the function imports it.
    if "torch" in sys.modules or importlib.util.find_spec("torch") is not None:
        import torch

        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        applied += [
            "torch.use_deterministic_algorithms(True)",
            "torch.backends.cudnn.deterministic=True",
            "torch.backends.cudnn.benchmark=False",
        ]
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        tf.config.experimental.enable_op_determinism()
        applied.append("tensorflow.config.experimental.enable_op_determinism()")
    else:
        applied.append("TF_DETERMINISTIC_OPS=" + os.environ["TF_DETERMINISTIC_OPS"])
    return applied


def determinism_tags(on: bool, applied: list[str]) -> dict[str, str]:
    """The run's record of it: whether asked, and each switch applied."""
    tags = {TAG_DETERMINISTIC: str(on).lower()}
    if on:
        tags[TAG_DETERMINISTIC_APPLIED] = ", ".join(applied)
    return tags
