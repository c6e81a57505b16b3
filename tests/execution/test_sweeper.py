"""The sweeper on Optuna's in-memory storage: no Ray, no MLflow."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from ml_experiment.config import MetricConfig
from ml_experiment.exceptions import ConfigError
from ml_experiment.execution.sweeper import ATTR_INTERRUPTED, ATTR_RERUN_OF, Sweeper

SPACE = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}


def sweeper(storage: Any, **kw: Any) -> Sweeper:
    args: dict[str, Any] = dict(
        name="g",
        storage=storage,
        metrics=[MetricConfig(name="acc", direction="maximize")],
        distributions=SPACE,
        sampler="random",
        seed=1,
    )
    args.update(kw)
    return Sweeper(**args)


@pytest.fixture
def storage() -> Any:
    return optuna.storages.InMemoryStorage()


def test_ask_tell_counts_and_best(storage: Any) -> None:
    s = sweeper(storage)
    assert s.study_name == "g" and s.notice is None and not s.resumed
    values = [0.2, 0.9, 0.5]
    for v in values:
        told = s.tell(s.ask(), "complete", {"acc": v}, None)
        assert told.state == "complete" and told.frozen.values == [v]
    s.tell(s.ask(), "pruned", {}, "pruned at step 3")
    s.tell(s.ask(), "fail", {}, "ValueError: boom")
    assert s.counts() == {"complete": 3, "fail": 1, "pruned": 1}
    assert s.best_value == 0.9
    assert [t.number for t in s.best()] == [1]
    assert s.study.trials[4].user_attrs["ml_experiment.error"] == "ValueError: boom"


def test_a_missing_or_non_finite_objective_fails_the_trial(storage: Any) -> None:
    s = sweeper(storage)
    told = s.tell(s.ask(), "complete", {"loss": 1.0}, None)
    assert told.state == "fail"
    assert told.error == "metric 'acc' was not returned by the trial; it returned: loss"
    told = s.tell(s.ask(), "complete", {"acc": float("nan")}, None)
    assert told.state == "fail" and "not finite" in (told.error or "")
    assert s.best() == [] and s.counts()["fail"] == 2


def test_errors_are_scrubbed_before_they_reach_the_study(storage: Any) -> None:
    s = sweeper(storage, scrub=lambda text: text.replace("hunter22", "***"))
    told = s.tell(s.ask(), "fail", {}, "ValueError: password hunter22 refused")
    assert told.error == "ValueError: password *** refused"
    assert "hunter22" not in str(s.study.trials[0].user_attrs)


def test_a_finished_study_makes_the_next_run_a_new_study(storage: Any) -> None:
    first = sweeper(storage)
    first.tell(first.ask(), "complete", {"acc": 0.5}, None)
    first.mark_finished()
    second = sweeper(storage)
    assert second.study_name == "g#2"
    assert second.notice == "group 'g' already ran (study 'g'): starting study 'g#2'"
    second.mark_finished()
    third = sweeper(storage)
    assert third.study_name == "g#3"
    third.mark_finished()
    with pytest.raises(ConfigError, match="no unfinished study named 'g'"):
        sweeper(storage, resume=True)


def test_an_unfinished_study_needs_resume_and_resume_needs_a_study(storage: Any) -> None:
    with pytest.raises(ConfigError, match="there is no study named 'g' to resume"):
        sweeper(storage, resume=True)
    s = sweeper(storage)
    s.tell(s.ask(), "complete", {"acc": 0.5}, None)
    with pytest.raises(ConfigError, match=r"was interrupted .*--resume"):
        sweeper(storage)
    resumed = sweeper(storage, resume=True)
    assert resumed.resumed and resumed.study_name == "g"
    assert len(resumed.study.trials) == 1


def test_each_sitting_is_counted_in_the_study(storage: Any) -> None:
    # A sitting killed before its parent run existed still counts: the study is written first.
    assert sweeper(storage).sittings == 1
    assert sweeper(storage, resume=True).sittings == 2
    resumed = sweeper(storage, resume=True)
    assert resumed.sittings == 3
    assert resumed.study.user_attrs["ml_experiment.sittings"] == 3
    resumed.mark_finished()
    assert sweeper(storage).sittings == 1  # a new study


def test_a_resumed_seeded_sampler_does_not_repeat_its_proposals(storage: Any) -> None:
    s = sweeper(storage)
    first = s.ask()
    s.tell(first, "complete", {"acc": 0.1}, None)
    resumed = sweeper(storage, resume=True)
    assert resumed.ask().params != first.params


def test_recover_fails_running_trials_and_requeues_those_with_parameters(storage: Any) -> None:
    s = sweeper(storage)
    done = s.ask()
    s.tell(done, "complete", {"acc": 0.7}, None)
    running = s.ask()  # a dead driver left it running, with its parameters
    half = s.study.ask()  # created by study.ask, killed before its parameters were sampled
    missing = sweeper(storage, resume=True).recover(recorded={done.number})
    by_number = {t.frozen.number: t for t in missing}
    assert set(by_number) == {running.number, half.number}
    assert all(t.state == "fail" for t in missing)
    assert "re-queued" in (by_number[running.number].error or "")
    assert "before its parameters" in (by_number[half.number].error or "")
    trials = s.study.get_trials()
    assert trials[running.number].state == TrialState.FAIL
    assert trials[running.number].user_attrs[ATTR_INTERRUPTED] is True
    queued = [t for t in trials if t.state == TrialState.WAITING]
    assert len(queued) == 1 and queued[0].system_attrs["fixed_params"] == running.params
    assert queued[0].user_attrs[ATTR_RERUN_OF] == running.number
    # Interrupted trials do not count as done.
    assert s.counts() == {"complete": 1, "fail": 0, "pruned": 0}


def test_recover_lists_finished_trials_missing_from_mlflow(storage: Any) -> None:
    s = sweeper(storage)
    a = s.tell(s.ask(), "complete", {"acc": 0.3}, None)
    b = s.tell(s.ask(), "fail", {}, "boom")
    missing = sweeper(storage, resume=True).recover(recorded={a.frozen.number})
    assert [(t.frozen.number, t.state, t.error) for t in missing] == [
        (b.frozen.number, "fail", "boom")
    ]


def test_several_objectives_give_the_pareto_front(storage: Any) -> None:
    s = sweeper(
        storage,
        metrics=[
            MetricConfig(name="a", direction="maximize"),
            MetricConfig(name="b", direction="maximize"),
        ],
    )
    for a, b in [(1.0, 0.5), (0.5, 1.0), (0.4, 0.4)]:
        s.tell(s.ask(), "complete", {"a": a, "b": b}, None)
    assert sorted(t.number for t in s.best()) == [0, 1]
    assert s.best_value is None
