"""XGBoost on the MAGIC gamma/hadron data: binary:logistic, Optuna pruning, early stopping.

The cosmic-ray example's XGBoost search, for two classes: the pruner sees the validation
accuracy (1 - error), early stopping waits max(10, rounds / 10) rounds.
``ml-experiment run examples/gamma_hadron/xgboost.yaml``; ``evaluate_on: test`` trains on the
whole training set for ``num_boost_round`` rounds and scores the test set once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xgboost as xgb
from magic import SEED, MagicLoader, binary_metrics, pick

from ml_experiment import Trial, job
from ml_experiment.exceptions import NotInTrialError


def pruning_callback() -> list[Any]:
    try:
        trial = Trial.get_current()
    except NotInTrialError:
        return []
    from ml_experiment.integrations import XGBoostPruningCallback

    class AccuracyPruningCallback(XGBoostPruningCallback):  # type: ignore[misc, valid-type]
        def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
            error = evals_log["validation"]["error"][-1]
            return super().after_iteration(model, epoch, {"validation": {"accuracy": [1 - error]}})

    return [AccuracyPruningCallback(trial, "validation-accuracy")]


@job(data_loader=MagicLoader)
def main(
    num_boost_round: int = 100,
    learning_rate: float = 0.3,
    max_depth: int = 6,
    gamma: float = 0.0,
    min_child_weight: float = 1.0,
    subsample: float = 1.0,
    max_boost_round: int | None = None,
    n_jobs: int = 1,
    evaluate_on: str = "validation",
) -> dict[str, float]:
    np.random.seed(SEED)
    if max_boost_round is not None:
        num_boost_round = min(num_boost_round, max_boost_round)
    X_fit, y_fit, X_eval, y_eval = pick(MagicLoader.load_data(), evaluate_on)
    train = xgb.DMatrix(X_fit, label=y_fit)
    params = {
        "objective": "binary:logistic",
        "eval_metric": "error",
        "learning_rate": learning_rate,
        "max_depth": max_depth,
        "gamma": gamma,
        "min_child_weight": min_child_weight,
        "subsample": subsample,
        "tree_method": "hist",
        "nthread": n_jobs,
        "seed": SEED,
    }
    evaluation = xgb.DMatrix(X_eval, label=y_eval)
    extra: dict[str, float] = {}
    if evaluate_on == "validation":
        patience = max(10, num_boost_round // 10)
        booster = xgb.train(
            params,
            train,
            num_boost_round=num_boost_round,
            evals=[(evaluation, "validation")],
            callbacks=[
                *pruning_callback(),
                xgb.callback.EarlyStopping(rounds=patience, data_name="validation"),
            ],
            verbose_eval=False,
        )
        rounds = booster.best_iteration + 1
        extra["best_num_boost_round"] = rounds
    else:
        booster = xgb.train(params, train, num_boost_round=num_boost_round)
        rounds = booster.num_boosted_rounds()
    score = booster.predict(evaluation, iteration_range=(0, rounds))
    metrics = binary_metrics(y_eval, (score > 0.5).astype(np.int64), score, evaluate_on)
    metrics.update(extra)
    print(f"rounds={num_boost_round} lr={learning_rate:.4g} depth={max_depth}: {metrics}")
    return metrics


if __name__ == "__main__":
    main()
