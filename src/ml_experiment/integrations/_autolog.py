"""``AutologgingBackend``: switch on MLflow's autologging for a framework inside a run."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from enum import Enum, StrEnum
from typing import Any

from ml_experiment.exceptions import ConfigError


class AutologgingBackend(StrEnum):
    """Frameworks whose MLflow autologging ``@job(autologging_backends=...)`` can enable."""

    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"
    KERAS = "keras"
    TENSORFLOW = "tensorflow"
    SKLEARN = "sklearn"
    PYTORCH = "pytorch"
    FASTAI = "fastai"


# The MLflow flavor module that owns each backend's autolog().
_FLAVORS = {
    AutologgingBackend.XGBOOST: "mlflow.xgboost",
    AutologgingBackend.LIGHTGBM: "mlflow.lightgbm",
    AutologgingBackend.KERAS: "mlflow.keras",
    AutologgingBackend.TENSORFLOW: "mlflow.tensorflow",
    AutologgingBackend.SKLEARN: "mlflow.sklearn",
    AutologgingBackend.PYTORCH: "mlflow.pytorch",
    AutologgingBackend.FASTAI: "mlflow.fastai",
}


def validate_backends(backends: Iterable[Any]) -> tuple[AutologgingBackend, ...]:
    """Check at decoration time that each backend exists in the installed MLflow."""
    out: list[AutologgingBackend] = []
    for b in backends:
        try:
            backend = AutologgingBackend(b.value if isinstance(b, Enum) else str(b).lower())
        except ValueError:
            allowed = ", ".join(m.name for m in AutologgingBackend)
            raise ConfigError(
                f"unknown autologging backend {b!r}. Available: {allowed}.",
                source="@job",
                field="autologging_backends",
            ) from None
        if importlib.util.find_spec(_FLAVORS[backend]) is None:
            import mlflow

            raise ConfigError(
                f"{backend.name} autologging is not available in the installed MLflow "
                f"{mlflow.__version__} (it has no {_FLAVORS[backend]} module); remove it from "
                "autologging_backends or log the model yourself",
                source="@job",
                field="autologging_backends",
            )
        out.append(backend)
    return tuple(out)


def enable_autologging(backends: Iterable[AutologgingBackend]) -> None:
    """Switch on autologging for ``backends`` in this process (logs to the active MLflow run)."""
    for backend in backends:
        module = importlib.import_module(_FLAVORS[backend])
        module.autolog(log_models=True, silent=True)


def disable_autologging(backends: Iterable[AutologgingBackend]) -> None:
    for backend in backends:
        module = importlib.import_module(_FLAVORS[backend])
        module.autolog(disable=True, silent=True)
