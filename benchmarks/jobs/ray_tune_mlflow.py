"""Baseline (c): Ray Tune with OptunaSearch (TPE) and its MLflow logger callback.

A private local Ray (``num_cpus`` CPUs, one per trial, ``max_concurrent_trials`` at once), Tune's
experiment state under ``./ray_results`` and the MLflow runs in ``./mlruns.db`` (SQLite), both in
the current directory. Tune's default loggers stay on, as in a user's script; actors are reused
between trials (``reuse_actors=True``, Tune's fast path; ``--no-reuse-actors`` for its default).

    python ray_tune_mlflow.py --trials 200 --seed 42                  # trivial trials
    python ray_tune_mlflow.py --trials 20 --workload busy --cpu-s 1   # ~1 s of CPU per trial

Every trial reports ``t_start`` (when the function body started, epoch seconds) beside its
metric, so the harness can time the trial phase from the first trial's real start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.search.optuna import OptunaSearch

RunConfig = getattr(tune, "RunConfig", None)
if RunConfig is None:  # Ray < 2.10
    from ray.air import RunConfig  # type: ignore[no-redef]


def trivial(config: dict) -> dict:
    t0 = time.time()
    return {"y": config["x"] ** 2, "t_start": t0, "t_end": time.time()}


def busy(config: dict) -> dict:
    t0 = time.time()
    c0 = time.process_time()
    while time.process_time() - c0 < config["cpu_s"]:
        pass
    return {"y": config["x"] ** 2, "t_start": t0, "t_end": time.time()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--name", default="bench-tune")
    ap.add_argument("--workload", choices=("trivial", "busy"), default="trivial")
    ap.add_argument("--cpu-s", type=float, default=1.0)
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument(
        "--no-reuse-actors",
        dest="reuse_actors",
        action="store_false",
        help="Tune's default: a new actor (worker process) per trial, ~2 s each on 2 cores",
    )
    args = ap.parse_args()

    cwd = os.getcwd()
    # A private Ray session in a short temp dir (the socket paths must stay short).
    temp = tempfile.mkdtemp(prefix="rt-", dir="/tmp")
    ray.init(
        address="local",
        num_cpus=args.num_cpus,
        include_dashboard=False,
        _temp_dir=temp,
        log_to_driver=False,
    )
    try:
        space: dict = {"x": tune.uniform(-10, 10)}
        trainable = trivial
        if args.workload == "busy":
            space["cpu_s"] = args.cpu_s
            trainable = busy
        tuner = tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune.TuneConfig(
                search_alg=OptunaSearch(metric="y", mode="min", seed=args.seed),
                num_samples=args.trials,
                max_concurrent_trials=args.num_cpus,
                # Tune's fast path for short trials (its default is False: one new process per
                # trial, which costs ~2 s a trial here and would make the comparison moot).
                reuse_actors=args.reuse_actors,
            ),
            run_config=RunConfig(
                name=args.name,
                storage_path=os.path.join(cwd, "ray_results"),
                callbacks=[
                    MLflowLoggerCallback(
                        tracking_uri=f"sqlite:///{cwd}/mlruns.db", experiment_name=args.name
                    )
                ],
                verbose=0,
            ),
        )
        results = tuner.fit()
        best = results.get_best_result(metric="y", mode="min")
        print(f"best y={best.metrics['y']:.6g} x={best.config['x']:.6g}")
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
