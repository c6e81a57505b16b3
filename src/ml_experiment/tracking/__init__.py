"""The knowledge center (MLflow) and the capture modules: seeds, vcs, environment, hardware, console, data."""

from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

__all__ = ["KnowledgeCenter", "MLflowTracker"]
