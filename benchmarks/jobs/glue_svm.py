"""Baseline for the README's main job: the same iris SVM search written as glue code.

``examples/quickstart/svm_group.yaml`` without ml-experiment: an Optuna study (TPE, seed 1234,
SQLite storage) over the same space, each trial the same training code in a nested MLflow run
(SQLite store) logging its params and ``val_accuracy``, under a parent run. One process,
sequential, as such scripts are usually written.

    python glue_svm.py --trials 40
"""

from __future__ import annotations

import argparse
import os

import mlflow
import numpy as np
import optuna
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

SEED = 1234


def train(C: float, kernel: str, degree: int, gamma: str) -> float:
    np.random.seed(SEED)
    iris = load_iris()
    X_train, X_val, y_train, y_val = train_test_split(
        iris.data, iris.target, test_size=0.5, random_state=SEED
    )
    model = SVC(C=C, gamma=gamma, kernel=kernel, degree=degree)
    model.fit(X_train, y_train)
    accuracy = float(model.score(X_val, y_val))
    print(f"C={C} kernel={kernel} degree={degree} gamma={gamma}: val_accuracy={accuracy:.4f}")
    return accuracy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--name", default="SVM")
    args = ap.parse_args()

    cwd = os.getcwd()
    mlflow.set_tracking_uri(f"sqlite:///{cwd}/mlruns.db")
    mlflow.set_experiment(args.name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=args.name,
        storage=f"sqlite:///{cwd}/optuna.db",
        sampler=optuna.samplers.TPESampler(seed=SEED),
        direction="maximize",
    )

    def objective(trial: optuna.Trial) -> float:
        params = {
            "C": trial.suggest_float("C", 0.01, 1000, log=True),
            "kernel": trial.suggest_categorical("kernel", ["rbf", "poly", "linear"]),
            "gamma": trial.suggest_categorical("gamma", ["scale", "auto"]),
            "degree": trial.suggest_int("degree", 2, 4),
        }
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.log_params(params)
            accuracy = train(**params)
            mlflow.log_metric("val_accuracy", accuracy)
        return accuracy

    with mlflow.start_run(run_name=args.name):
        study.optimize(objective, n_trials=args.trials)
        mlflow.log_params(study.best_params)
        mlflow.log_metric("best_val_accuracy", study.best_value)


if __name__ == "__main__":
    main()
