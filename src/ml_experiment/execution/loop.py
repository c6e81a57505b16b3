"""The trial loop of a group: sweeper -> executor -> recorder, top to bottom.

Optuna's ``_optimize`` and Hydra's sweeper/launcher split the same way: the study decides, the
executor runs, the loop only moves trials between them. It knows nothing of Ray or MLflow, so a
fake executor unit-tests it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import optuna

    from ml_experiment.execution._worker import TrialResult, TrialSpec
    from ml_experiment.execution.executor import Executor
    from ml_experiment.execution.sweeper import Sweeper, Told

POLL_S = 0.5  # longest wait for a trial before the loop looks at Ctrl-C / SIGTERM again


class LoopHooks(Protocol):
    """What the loop asks of the group around it."""

    def spec(self, trial: optuna.Trial) -> TrialSpec:
        """The work order for a freshly asked trial."""

    def dispatched(self, trial: optuna.Trial, spec: TrialSpec) -> None:
        """The trial was sent to the executor."""

    def finished(self, told: Told, spec: TrialSpec, result: TrialResult) -> None:
        """The study recorded the trial's outcome: record the run, fire callbacks."""

    def waiting(self, running: int) -> None:
        """Between waits: progress, and the place to stop at (raises on Ctrl-C / SIGTERM)."""


def run_trials(sweeper: Sweeper, executor: Executor, hooks: LoopHooks, to_run: int) -> None:
    """Run ``to_run`` new trials, keeping every executor slot busy; cancel the rest on any error."""
    pending: dict[Hashable, tuple[Any, TrialSpec]] = {}
    dispatched = 0
    try:
        while True:
            while len(pending) < executor.slots and dispatched < to_run:
                trial = sweeper.ask()
                spec = hooks.spec(trial)
                pending[executor.submit(spec)] = (trial, spec)
                dispatched += 1
                hooks.dispatched(trial, spec)
            hooks.waiting(len(pending))
            if not pending:
                return
            for handle, result in executor.wait(POLL_S):
                trial, spec = pending.pop(handle)
                told = sweeper.tell(trial, result.state, result.metrics, result.error)
                hooks.finished(told, spec, result)
    finally:
        if pending:
            # Interrupted or failed: stop the workers; --resume re-runs these trials.
            executor.cancel_all()
