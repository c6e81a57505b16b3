"""Samplers and pruners by name, the trial context, the study storage."""

from __future__ import annotations

import optuna
import pytest

from ml_experiment import Trial
from ml_experiment.exceptions import ConfigError, NotInTrialError
from ml_experiment.hpo import build_pruner, build_sampler, open_storage


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("tpe", optuna.samplers.TPESampler),
        ("RANDOM", optuna.samplers.RandomSampler),
        ("cmaes", optuna.samplers.CmaEsSampler),
        ("gp", optuna.samplers.GPSampler),
        ("qmc", optuna.samplers.QMCSampler),
        ("nsga2", optuna.samplers.NSGAIISampler),
    ],
)
def test_samplers_by_name(name: str, cls: type) -> None:
    assert isinstance(build_sampler(name, seed=1), cls)


def test_grid_sampler_from_distributions_and_unknown_names() -> None:
    space = {
        "a": optuna.distributions.IntDistribution(1, 3),
        "b": optuna.distributions.CategoricalDistribution(["x", "y"]),
    }
    sampler = build_sampler("grid", seed=0, search_space=space)
    assert isinstance(sampler, optuna.samplers.GridSampler)
    with pytest.raises(ConfigError, match="grid sampler needs"):
        build_sampler(
            "grid", seed=0, search_space={"c": optuna.distributions.FloatDistribution(0, 1)}
        )
    with pytest.raises(ConfigError, match=r"Unknown sampler 'tpee'\. Available: tpe, random"):
        build_sampler("tpee", seed=0)
    with pytest.raises(ConfigError, match="Unknown pruner 'hyper'"):
        build_pruner("hyper")


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("sha", optuna.pruners.SuccessiveHalvingPruner),
        ("median", optuna.pruners.MedianPruner),
        ("percentile", optuna.pruners.PercentilePruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_pruners_by_name(name: str, cls: type) -> None:
    assert isinstance(build_pruner(name), cls)


def test_grid_sampler_survives_ask_tell_past_the_grid() -> None:
    space = {"a": optuna.distributions.IntDistribution(0, 1)}
    study = optuna.create_study(sampler=build_sampler("grid", seed=0, search_space=space))
    for _ in range(2):
        t = study.ask(space)
        study.tell(t, float(t.params["a"]))
    assert sorted(t.params["a"] for t in study.trials) == [0, 1]


def test_trial_get_current_outside_a_group() -> None:
    with pytest.raises(NotInTrialError, match="only available inside a group trial"):
        Trial.get_current()


def test_journal_storage_is_persistent(tmp_path) -> None:
    path = str(tmp_path / "s.journal")
    study = optuna.create_study(study_name="s", storage=open_storage(path))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    again = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)))
    assert len(again.trials) == 3
