"""``Trial.get_current()``: the live ``optuna.Trial`` inside a group trial."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ml_experiment import _runtime
from ml_experiment.exceptions import NotInTrialError

if TYPE_CHECKING:
    import optuna


@dataclass
class TrialContext:
    """What a worker knows about the trial it runs; the optuna objects are built on first use."""

    study_name: str
    storage_path: str
    number: int
    pruner: str
    _trial: Any = field(default=None, repr=False)

    def trial(self) -> optuna.Trial:
        if self._trial is None:
            import optuna

            from ml_experiment import _private
            from ml_experiment.hpo._samplers import build_pruner
            from ml_experiment.hpo._storage import open_storage

            storage = open_storage(self.storage_path)
            study = optuna.load_study(
                study_name=self.study_name, storage=storage, pruner=build_pruner(self.pruner)
            )
            trial_id = storage.get_trial_id_from_study_id_trial_number(
                storage.get_study_id_from_name(self.study_name), self.number
            )
            self._trial = _private.optuna_trial(study, trial_id)
        return self._trial


class Trial:
    """Access to the running trial of a group."""

    @staticmethod
    def get_current() -> optuna.Trial:
        """Return the live ``optuna.Trial`` of the group trial running in this process.

        Raises:
            NotInTrialError: when called outside a group trial (e.g. in a single experiment).
        """
        ctx = _runtime.get_trial_context()
        if ctx is None:
            raise NotInTrialError(
                "Trial.get_current() is only available inside a group trial (kind: group); "
                "this code is running as a single experiment"
            )
        return ctx.trial()
