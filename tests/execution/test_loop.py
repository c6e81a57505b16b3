"""The group loop with a fake executor: dispatch, refill, tell, cancel — no Ray."""

from __future__ import annotations

from collections import deque
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution

from ml_experiment.config import MetricConfig
from ml_experiment.exceptions import Interrupted
from ml_experiment.execution._worker import TrialResult, TrialSpec
from ml_experiment.execution.loop import run_trials
from ml_experiment.execution.sweeper import Sweeper, Told


class FakeExecutor:
    """Runs a trial's objective at submit; ``wait`` hands back one finished trial, oldest first."""

    def __init__(self, slots: int, objective: Any) -> None:
        self.slots = slots
        self.objective = objective
        self.running: deque[tuple[int, TrialResult]] = deque()
        self.max_running = 0
        self.cancelled: list[int] = []
        self._next = 0

    def submit(self, spec: TrialSpec) -> int:
        handle = self._next
        self._next += 1
        self.running.append((handle, self.objective(spec)))
        self.max_running = max(self.max_running, len(self.running))
        return handle

    def wait(self, timeout: float) -> list[tuple[int, TrialResult]]:
        return [self.running.popleft()] if self.running else []

    def cancel_all(self) -> None:
        self.cancelled.extend(h for h, _ in self.running)
        self.running.clear()


class Hooks:
    def __init__(self, stop_after: int | None = None, fail_on: int | None = None) -> None:
        self.events: list[tuple[str, int]] = []
        self.stop_after = stop_after
        self.fail_on = fail_on
        self.told: list[Told] = []

    def spec(self, trial: optuna.Trial) -> TrialSpec:
        return TrialSpec(
            script="s.py", fn_name="f", number=trial.number, params=dict(trial.params),
            seed=None, study_name="g", storage_path="", pruner="none", metric_names=["acc"],
        )  # fmt: skip

    def dispatched(self, trial: optuna.Trial, spec: TrialSpec) -> None:
        self.events.append(("dispatched", trial.number))

    def finished(self, told: Told, spec: TrialSpec, result: TrialResult) -> None:
        self.events.append(("finished", told.frozen.number))
        self.told.append(told)
        if told.frozen.number == self.fail_on:
            raise RuntimeError("the recorder broke")

    def waiting(self, running: int) -> None:
        if self.stop_after is not None and len(self.told) >= self.stop_after:
            raise Interrupted("stopped", signum=15)


def objective(spec: TrialSpec) -> TrialResult:
    x = spec.params["x"]
    if x > 0.8:
        return TrialResult("fail", error="ValueError: too big")
    return TrialResult("complete", metrics={"acc": x})


@pytest.fixture
def sweeper() -> Sweeper:
    return Sweeper(
        name="g",
        storage=optuna.storages.InMemoryStorage(),
        metrics=[MetricConfig(name="acc", direction="maximize")],
        distributions={"x": FloatDistribution(0.0, 1.0)},
        sampler="random",
        seed=3,
    )


def test_runs_exactly_the_trials_asked_with_every_slot_busy(sweeper: Sweeper) -> None:
    executor, hooks = FakeExecutor(3, objective), Hooks()
    run_trials(sweeper, executor, hooks, 10)
    assert len(sweeper.study.trials) == 10
    assert executor.max_running == 3 and not executor.cancelled
    # The first three go out before anything finishes; each finish frees a slot for the next.
    assert [e for e, _ in hooks.events[:4]] == ["dispatched"] * 3 + ["finished"]
    assert sorted(n for e, n in hooks.events if e == "finished") == list(range(10))
    told_states = {t.frozen.number: t.state for t in hooks.told}
    fails = {t.number for t in sweeper.study.trials if t.params["x"] > 0.8}
    assert {n for n, s in told_states.items() if s == "fail"} == fails
    assert sweeper.counts()["complete"] == 10 - len(fails)


def test_nothing_to_run_returns_at_once(sweeper: Sweeper) -> None:
    executor = FakeExecutor(2, objective)
    run_trials(sweeper, executor, Hooks(), 0)
    assert sweeper.study.trials == [] and executor.max_running == 0


def test_a_stop_at_the_safe_point_cancels_what_runs(sweeper: Sweeper) -> None:
    executor, hooks = FakeExecutor(2, objective), Hooks(stop_after=3)
    with pytest.raises(Interrupted) as info:
        run_trials(sweeper, executor, hooks, 10)
    assert info.value.exit_code == 143
    assert len(hooks.told) == 3 and len(executor.cancelled) == 2


def test_an_error_while_recording_cancels_the_rest(sweeper: Sweeper) -> None:
    executor, hooks = FakeExecutor(2, objective), Hooks(fail_on=1)
    with pytest.raises(RuntimeError, match="the recorder broke"):
        run_trials(sweeper, executor, hooks, 10)
    assert executor.cancelled and not executor.running
