"""Group and experiment reports: one offline HTML page (plotly inline) and PNG plots (matplotlib).

Heavy libraries (mlflow, optuna, plotly, matplotlib) are imported when a report is built.
"""

from ml_experiment.report._build import ARTIFACT_DIR, build_report

__all__ = ["ARTIFACT_DIR", "build_report"]
