"""Optuna samplers and pruners by the names a job file uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ml_experiment.exceptions import ConfigError

if TYPE_CHECKING:
    import optuna

SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc", "grid", "nsga2")
PRUNERS = ("hyperband", "sha", "median", "percentile", "none")


def build_sampler(
    name: str,
    *,
    seed: int | None,
    search_space: dict[str, Any] | None = None,
    multi_objective: bool = False,
) -> optuna.samplers.BaseSampler:
    """Return the sampler called ``name``, seeded with ``seed``.

    ``search_space`` (flat name -> optuna distribution) is needed by the grid sampler.
    """
    import optuna

    key = name.lower()
    if key == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=False)
    if key == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if key == "cmaes":
        if multi_objective:
            raise ConfigError("cmaes does not support several metrics; use nsga2", field="sampler")
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if key == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if key == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if key == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if key == "grid":
        grid = {name: _grid_values(name, dist) for name, dist in (search_space or {}).items()}
        return _ask_tell_grid_sampler()(grid, seed=seed)
    raise ConfigError(
        f"Unknown sampler {name!r}. Available: {', '.join(SAMPLERS)}.", field="sampler"
    )


def _ask_tell_grid_sampler() -> type:
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """GridSampler whose end-of-grid ``study.stop()`` (valid only inside ``optimize``) is skipped.

        A group dispatches exactly ``num_trials`` trials with ask/tell, so it needs no stop signal.
        """

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskTellGridSampler


def _AskTellGridSampler(grid: dict[str, list[Any]], *, seed: int | None) -> Any:
    return _ask_tell_grid_sampler()(grid, seed=seed)


def _grid_values(name: str, dist: Any) -> list[Any]:
    import optuna

    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution) and not dist.log:
        return list(range(dist.low, dist.high + 1, dist.step))
    raise ConfigError(
        "the grid sampler needs choice, range or randint distributions",
        field=f"param_space.{name}",
    )


def build_pruner(name: str) -> optuna.pruners.BasePruner:
    """Return the pruner called ``name``."""
    import optuna

    key = name.lower()
    if key == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if key in ("sha", "successivehalving"):
        return optuna.pruners.SuccessiveHalvingPruner()
    if key == "median":
        return optuna.pruners.MedianPruner()
    if key == "percentile":
        return optuna.pruners.PercentilePruner(25.0)
    if key == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"Unknown pruner {name!r}. Available: {', '.join(PRUNERS)}.", field="pruner")
