"""Optuna's pruning callbacks for ML frameworks, resolved on first use.

Each name maps to (optuna_integration submodule, the framework package it needs, the pip extra).
Pass ``Trial.get_current()`` as their trial: inside a group trial it is the live trial, whose
reports reach the study's pruner from any worker.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from ml_experiment.exceptions import MissingDependencyError

PRUNING_CALLBACKS: dict[str, tuple[str, str, str]] = {
    "XGBoostPruningCallback": ("xgboost", "xgboost", "xgboost"),
    "LightGBMPruningCallback": ("lightgbm", "lightgbm", "lightgbm"),
    "KerasPruningCallback": ("keras", "keras", "tensorflow"),
    "TFKerasPruningCallback": ("tfkeras", "tensorflow", "tensorflow"),
    "PyTorchLightningPruningCallback": ("pytorch_lightning", "lightning", "lightning"),
    "PyTorchIgnitePruningHandler": ("pytorch_ignite", "ignite", "ignite"),
    "FastAIV2PruningCallback": ("fastaiv2", "fastai", "fastai"),
    "FastAIPruningCallback": ("fastaiv2", "fastai", "fastai"),
    "CatBoostPruningCallback": ("catboost", "catboost", "catboost"),
}


def pruning_callback_class(name: str) -> Any:
    """The optuna-integration class called ``name``; a missing framework names its pip extra."""
    submodule, package, extra = PRUNING_CALLBACKS[name]
    if importlib.util.find_spec(package) is None:
        raise MissingDependencyError(name, package, extra)
    module = importlib.import_module(f"optuna_integration.{submodule}")
    return getattr(module, name)
