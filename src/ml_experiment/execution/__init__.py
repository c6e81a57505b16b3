"""How a job runs: its scripts in this process, experiments tracked in MLflow, groups on Ray."""

from ml_experiment.execution._experiment import RunOutcome, run_experiment
from ml_experiment.execution._load import load_job_function
from ml_experiment.execution._scripts import run_job

__all__ = ["RunOutcome", "load_job_function", "run_experiment", "run_job"]
