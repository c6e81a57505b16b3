"""Framework integrations: MLflow autologging and Optuna pruning callbacks (imported lazily)."""

from ml_experiment.integrations._autolog import AutologgingBackend

__all__ = ["AutologgingBackend"]
