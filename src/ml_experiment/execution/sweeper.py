"""The study of a group: open or resume it, ask for trials, tell results, find the best.

No Ray and no MLflow here: a ``Sweeper`` runs on any Optuna storage, the in-memory one included,
so it is unit-tested on its own. Only Optuna's public API is used (the study and its storage).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml_experiment.exceptions import ConfigError

if TYPE_CHECKING:
    import optuna

    from ml_experiment.config import MetricConfig

ATTR_PARENT = "ml_experiment.parent_run_id"
ATTR_FINISHED = "ml_experiment.finished"
ATTR_INTERRUPTED = "ml_experiment.interrupted"
ATTR_ERROR = "ml_experiment.error"
ATTR_RERUN_OF = "ml_experiment.rerun_of"
ATTR_SITTINGS = "ml_experiment.sittings"  # starts of the study: 1, then +1 per --resume
ATTR_SEED = "ml_experiment.seed"  # a trial's own seed (a replayed trial keeps its original one)
ATTR_REPLAY_OF = "ml_experiment.replay_of"  # the trial number a replayed trial re-runs
STATES = ("complete", "fail", "pruned")


@dataclass
class Told:
    """A finished trial as the study recorded it."""

    frozen: optuna.trial.FrozenTrial
    state: str  # one of STATES
    error: str | None = None


def study_names(storage: Any, name: str) -> list[str]:
    """The studies of group ``name`` in ``storage``, oldest first (``name``, ``name#2``, ...)."""
    import optuna

    found = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    names = [name] if name in found else []
    n = 2
    while f"{name}#{n}" in found:
        names.append(f"{name}#{n}")
        n += 1
    return names


class Sweeper:
    """One group's study on ``storage``.

    A new group gets a study named after it; running a group whose study finished starts a new
    one (``name#2``, ...; :attr:`notice` says so); ``resume`` continues the latest unfinished one.
    """

    def __init__(
        self,
        *,
        name: str,
        storage: Any,
        metrics: list[MetricConfig],
        distributions: dict[str, Any],
        sampler: str = "tpe",
        pruner: str = "none",
        seed: int | None = None,
        resume: bool = False,
        source: Any = None,
        scrub: Callable[[str], str] = str,
        replay: list[dict[str, Any]] | None = None,
    ) -> None:
        import optuna

        from ml_experiment.hpo import build_pruner, build_sampler

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.metrics = metrics
        self.distributions = distributions
        self.storage = storage
        self.scrub = scrub  # errors are kept in the study: no secret may reach it
        self.notice: str | None = None
        self.resumed = False
        existing = study_names(storage, name)
        self.study_name = self._choose(name, existing, resume, source)
        done = 0
        if self.resumed:
            done = len(self._load().get_trials(deepcopy=False))
        if self.resumed and seed is not None:
            # A resumed sampler seeded as at the start would propose the same values again.
            from ml_experiment.tracking.seeds import derive_seed

            seed = derive_seed(seed, 1_000_000 + done)
        self.study = optuna.create_study(
            study_name=self.study_name,
            storage=storage,
            sampler=build_sampler(
                sampler,
                seed=seed,
                search_space=distributions,
                multi_objective=len(metrics) > 1,
            ),
            pruner=build_pruner(pruner),
            directions=[m.direction for m in metrics],
            load_if_exists=self.resumed,
        )
        # Counted here, which each sitting writes first: its parent run may not exist yet.
        self.sittings = int(self.study.user_attrs.get(ATTR_SITTINGS, 0)) + 1
        self.study.set_user_attr(ATTR_SITTINGS, self.sittings)
        # Exact parameters and seeds of recorded trials (``ml-experiment reproduce``).
        for trial in [] if self.resumed else replay or []:
            attrs = {ATTR_SEED: trial.get("seed"), ATTR_REPLAY_OF: trial.get("of")}
            self.study.enqueue_trial(trial["params"], user_attrs=attrs)
        self.best_value: float | None = None

    def _load(self) -> optuna.Study:
        import optuna

        return optuna.load_study(study_name=self.study_name, storage=self.storage)

    def _choose(self, name: str, existing: list[str], resume: bool, source: Any) -> str:
        import optuna

        latest = existing[-1] if existing else None
        finished = latest is not None and bool(
            optuna.load_study(study_name=latest, storage=self.storage).user_attrs.get(ATTR_FINISHED)
        )
        if resume:
            if latest is None or finished:
                what = "no study" if latest is None else "no unfinished study"
                raise ConfigError(
                    f"--resume: there is {what} named {name!r} to resume; run without --resume "
                    "to start one",
                    source=source,
                    field="name",
                )
            self.resumed = True
            return latest
        if latest is None:
            return name
        if not finished:
            raise ConfigError(
                f"the group {name!r} was interrupted (study {latest!r}); run the same command "
                "with --resume to continue it, or give the job another name",
                source=source,
                field="name",
            )
        new = f"{name}#{len(existing) + 1}"
        self.notice = f"group {name!r} already ran (study {latest!r}): starting study {new!r}"
        return new

    # -- the parent run ---------------------------------------------------------------------
    @property
    def parent_run_id(self) -> str | None:
        value = self.study.user_attrs.get(ATTR_PARENT)
        return str(value) if value else None

    def set_parent_run_id(self, run_id: str) -> None:
        self.study.set_user_attr(ATTR_PARENT, run_id)

    def mark_finished(self) -> None:
        self.study.set_user_attr(ATTR_FINISHED, True)

    # -- trials -----------------------------------------------------------------------------
    def ask(self) -> optuna.Trial:
        return self.study.ask(self.distributions)

    def tell(
        self, trial: optuna.Trial | int, state: str, metrics: dict[str, float], error: str | None
    ) -> Told:
        """Record a trial's outcome. A complete trial whose objective is missing or not finite fails."""
        from optuna.trial import TrialState

        values: list[float] = []
        if state == "complete":
            missing = [m.name for m in self.metrics if m.name not in metrics]
            if missing:
                returned = ", ".join(sorted(metrics)) or "no metrics"
                state = "fail"
                error = (
                    f"metric {missing[0]!r} was not returned by the trial; it returned: {returned}"
                )
            else:
                values = [metrics[m.name] for m in self.metrics]
                if any(not math.isfinite(v) for v in values):
                    state, error = "fail", f"the objective is not finite: {values}"
        number = trial if isinstance(trial, int) else trial.number
        if error:
            error = self.scrub(error)
            self._set_trial_attr(number, ATTR_ERROR, error[:2000])
        if state == "complete":
            frozen = self.study.tell(trial, values)
            self._track_best(values)
        elif state == "pruned":
            frozen = self.study.tell(trial, state=TrialState.PRUNED)
        else:
            frozen = self.study.tell(trial, state=TrialState.FAIL)
        return Told(frozen, state, error)

    def _track_best(self, values: list[float]) -> None:
        if len(values) != 1:
            return
        value = values[0]
        maximize = self.metrics[0].direction == "maximize"
        if self.best_value is None or (
            value > self.best_value if maximize else value < self.best_value
        ):
            self.best_value = value

    def _set_trial_attr(self, number: int, key: str, value: Any) -> None:
        study_id = self.storage.get_study_id_from_name(self.study_name)
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        self.storage.set_trial_user_attr(trial_id, key, value)

    # -- resume -----------------------------------------------------------------------------
    def recover(self, recorded: set[int]) -> list[Told]:
        """Fail the trials a dead driver left running; list finished trials missing from MLflow.

        A running trial is failed and, when it has all its parameters, queued again (``--resume``
        re-runs it); one that died before its parameters were written is only failed.
        """
        from optuna.trial import TrialState

        missing: list[Told] = []
        for t in self.study.get_trials(deepcopy=False):
            if t.state == TrialState.RUNNING:
                complete = set(self.distributions) <= set(t.params)
                error = (
                    "interrupted: the driver stopped while this trial ran; re-queued"
                    if complete
                    else "interrupted before its parameters were sampled"
                )
                self._set_trial_attr(t.number, ATTR_INTERRUPTED, True)
                told = self.tell(t.number, "fail", {}, error)
                if complete:
                    self.study.enqueue_trial(t.params, user_attrs={ATTR_RERUN_OF: t.number})
                if t.number not in recorded:
                    missing.append(told)
            elif t.state.is_finished() and t.number not in recorded:
                state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(
                    t.state, "fail"
                )
                missing.append(Told(t, state, t.user_attrs.get(ATTR_ERROR)))
                if state == "complete" and t.values:
                    self._track_best(list(t.values))
        return missing

    def counts(self) -> dict[str, int]:
        """Trials by outcome; trials failed because the driver stopped (and re-queued) do not count."""
        from optuna.trial import TrialState

        counts = dict.fromkeys(STATES, 0)
        for t in self.study.get_trials(deepcopy=False):
            if t.state == TrialState.COMPLETE:
                counts["complete"] += 1
            elif t.state == TrialState.PRUNED:
                counts["pruned"] += 1
            elif t.state == TrialState.FAIL and not t.user_attrs.get(ATTR_INTERRUPTED):
                counts["fail"] += 1
        return counts

    def metric_values(self, frozen: optuna.trial.FrozenTrial) -> dict[str, float]:
        return dict(zip((m.name for m in self.metrics), frozen.values or [], strict=False))

    def best(self) -> list[optuna.trial.FrozenTrial]:
        """The best trial, or the Pareto front for several objectives; empty before any completes."""
        from optuna.trial import TrialState

        if not any(t.state == TrialState.COMPLETE for t in self.study.get_trials(deepcopy=False)):
            return []
        return [self.study.best_trial] if len(self.metrics) == 1 else list(self.study.best_trials)
