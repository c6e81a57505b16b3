"""Callbacks: hook user code into a job's life. Notifiers live in ``ml_experiment.callbacks.notifiers``."""

from ml_experiment.callbacks._base import Callback

__all__ = ["Callback"]
