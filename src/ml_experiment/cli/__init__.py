"""The command-line interface."""

from ml_experiment.cli._app import app, main

__all__ = ["app", "main"]
