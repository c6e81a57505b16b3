"""Framework integrations: MLflow autologging and Optuna's pruning callbacks.

Importing this package imports no ML framework: ``integrations.XGBoostPruningCallback`` (and
the other pruning callbacks) are resolved on first access.
"""

from typing import Any

from ml_experiment.integrations._autolog import AutologgingBackend
from ml_experiment.integrations._pruning import PRUNING_CALLBACKS, pruning_callback_class

__all__ = ["AutologgingBackend", *PRUNING_CALLBACKS]


def __getattr__(name: str) -> Any:
    if name in PRUNING_CALLBACKS:
        return pruning_callback_class(name)
    raise AttributeError(f"module 'ml_experiment.integrations' has no attribute {name!r}")
