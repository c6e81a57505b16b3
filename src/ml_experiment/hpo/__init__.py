"""Hyperparameter optimisation on Optuna: storage, samplers and pruners by name, the trial context."""

from ml_experiment.hpo._samplers import PRUNERS, SAMPLERS, build_pruner, build_sampler
from ml_experiment.hpo._storage import open_storage, public_url, storage_kind, study_location
from ml_experiment.hpo._trial import Trial, TrialContext

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "Trial",
    "TrialContext",
    "build_pruner",
    "build_sampler",
    "open_storage",
    "public_url",
    "storage_kind",
    "study_location",
]
