"""Baseline (b): the glue code users write today, without ml-experiment.

An Optuna study in SQLite storage; the objective opens a nested MLflow run per trial (SQLite
tracking store) under a parent run and logs the trial's params and metric. Sequential, one
process, as such scripts are usually written. Stores land in the current directory:
``optuna.db`` (the study) and ``mlruns.db`` (MLflow).

    python glue_optuna_mlflow.py --trials 200 --seed 42
"""

from __future__ import annotations

import argparse
import os

import mlflow
import optuna


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--name", default="bench-glue")
    ap.add_argument("--tracking-uri", default=None, help="default: sqlite:///./mlruns.db")
    ap.add_argument("--storage", default=None, help="default: sqlite:///./optuna.db")
    args = ap.parse_args()

    cwd = os.getcwd()
    mlflow.set_tracking_uri(args.tracking_uri or f"sqlite:///{cwd}/mlruns.db")
    mlflow.set_experiment(args.name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=args.name,
        storage=args.storage or f"sqlite:///{cwd}/optuna.db",
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        direction="minimize",
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -10, 10)
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.log_params({"x": x})
            y = x**2
            mlflow.log_metric("y", y)
        return y

    with mlflow.start_run(run_name=args.name):
        study.optimize(objective, n_trials=args.trials)
        mlflow.log_params(study.best_params)
        mlflow.log_metric("best_y", study.best_value)


if __name__ == "__main__":
    main()
