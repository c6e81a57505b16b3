"""XGBoost (thesis section 7.3.2, Listing 7.4): multi:softmax with Optuna pruning and early stopping.

Run the thesis's search (100 trials, TPE): ``ml-experiment run examples/cosmic_rays/xgboost.yaml``.
(Not called ``xgboost.py``: that would shadow the package it imports.)

Two fixes over the thesis's script:

* The pruner is given the validation **accuracy** (1 - merror), not merror: the study
  maximises ``val_accuracy``, and Optuna's pruners read reported values in the study's
  direction, so reporting an error rate would prune the best trials and keep the worst.
* The metric is the accuracy of the model that is kept (the best iteration under early
  stopping), not of the last iteration.

``evaluate_on: test`` trains on the whole training set for exactly ``num_boost_round`` rounds
(there is no validation set to stop on; the final table passes the best trial's
``best_num_boost_round``) and scores the test set once.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import xgboost as xgb

from data import SEED, UnifiedLoader, accuracy_metrics, pick, predictions_artifact, subsample_rows
from ml_experiment import Trial, job
from ml_experiment.exceptions import NotInTrialError


def pruning_callback() -> list[Any]:
    """Optuna's XGBoost pruning callback on validation accuracy, inside a group trial only."""
    try:
        trial = Trial.get_current()
    except NotInTrialError:
        return []  # a single experiment (e.g. the final retraining): nothing to prune
    from ml_experiment.integrations import XGBoostPruningCallback

    class AccuracyPruningCallback(XGBoostPruningCallback):  # type: ignore[misc, valid-type]
        def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
            error = evals_log["validation"]["merror"][-1]
            return super().after_iteration(model, epoch, {"validation": {"accuracy": [1 - error]}})

    return [AccuracyPruningCallback(trial, "validation-accuracy")]


@job(data_loader=UnifiedLoader)
def main(
    num_boost_round: int = 100,
    learning_rate: float = 0.3,
    max_depth: int = 6,
    gamma: float = 0.0,
    min_child_weight: float = 1.0,
    subsample: float = 1.0,
    early_stopping: bool = True,
    max_boost_round: int | None = None,
    max_train_samples: int | None = None,
    n_jobs: int = 1,
    evaluate_on: str = "validation",
) -> dict[str, float] | tuple[dict[str, float], dict[str, str]]:
    np.random.seed(SEED)
    if max_boost_round is not None:  # a budget knob: caps the searched number of rounds
        num_boost_round = min(num_boost_round, max_boost_round)
    data = UnifiedLoader.load_data()
    X_fit, y_fit, X_eval, y_eval = pick(data, evaluate_on)
    X_fit, y_fit = subsample_rows(X_fit, y_fit, max_train_samples)
    t0 = time.perf_counter()
    train = xgb.DMatrix(X_fit, label=y_fit)
    params = {
        "objective": "multi:softmax",
        "num_class": int(y_fit.max()) + 1,
        "eval_metric": "merror",
        "learning_rate": learning_rate,
        "max_depth": max_depth,
        "gamma": gamma,
        "min_child_weight": min_child_weight,
        "subsample": subsample,
        "tree_method": "hist",
        "nthread": n_jobs,
        "seed": SEED,
    }
    metrics: dict[str, float] = {}
    if evaluate_on == "validation":
        val = xgb.DMatrix(X_eval, label=y_eval)
        callbacks: list[Any] = pruning_callback()
        if early_stopping:
            patience = max(10, num_boost_round // 10)
            callbacks.append(xgb.callback.EarlyStopping(rounds=patience, data_name="validation"))
        booster = xgb.train(
            params,
            train,
            num_boost_round=num_boost_round,
            evals=[(val, "validation")],
            callbacks=callbacks,
            verbose_eval=False,
        )
        best = booster.best_iteration if early_stopping else booster.num_boosted_rounds() - 1
        pred = booster.predict(val, iteration_range=(0, best + 1))
        metrics["best_num_boost_round"] = best + 1
    else:
        booster = xgb.train(params, train, num_boost_round=num_boost_round)
        # the class margins: their argmax is multi:softmax's prediction, their softmax the
        # class probabilities the ROC curves need
        margin = booster.predict(xgb.DMatrix(X_eval), output_margin=True)
        margin = margin.reshape(y_eval.shape[0], -1)
        pred = margin.argmax(axis=1)
        proba = np.exp(margin - margin.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
    metrics.update(accuracy_metrics(y_eval, pred.astype(np.int64), evaluate_on))
    metrics["fit_time_s"] = time.perf_counter() - t0
    print(f"rounds={num_boost_round} lr={learning_rate:.4g} depth={max_depth}: {metrics}")
    if evaluate_on == "test":  # the final table's figures
        return metrics, predictions_artifact(y_eval, pred, proba, "probability")
    return metrics


if __name__ == "__main__":
    main()
