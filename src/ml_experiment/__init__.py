"""ml-experiment: one decorator, one job file, one command; every run in the knowledge center.

Heavy libraries (mlflow, optuna, ray) are imported only when a job runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from ml_experiment._data import DataLoader
    from ml_experiment._job import job
    from ml_experiment.hpo._trial import Trial
    from ml_experiment.integrations._autolog import AutologgingBackend

_LAZY = {
    "job": "ml_experiment._job",
    "DataLoader": "ml_experiment._data",
    "Trial": "ml_experiment.hpo._trial",
    "AutologgingBackend": "ml_experiment.integrations._autolog",
}

__all__ = ["AutologgingBackend", "DataLoader", "Trial", "__version__", "job"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ml_experiment' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
