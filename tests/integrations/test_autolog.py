"""``@job(autologging_backends=...)``: MLflow's autologging writes into the job's own run (an
experiment's run, or each group trial's child run); backends MLflow lacks are rejected early."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import all_runs, client, write

from ml_experiment import AutologgingBackend, job
from ml_experiment.exceptions import ConfigError

SKLEARN_SCRIPT = """
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from ml_experiment import AutologgingBackend, job

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)


@job(autologging_backends=[AutologgingBackend.SKLEARN])
def main(C: float = 1.0, max_iter: int = 300):
    clf = LogisticRegression(C=C, max_iter=max_iter).fit(X_train, y_train)
    return {"val_accuracy": clf.score(X_test, y_test)}


if __name__ == "__main__":
    main()
"""

XGBOOST_SCRIPT = """
import xgboost as xgb
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from ml_experiment import AutologgingBackend, job

X, y = load_iris(return_X_y=True)
X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.3, random_state=0)


@job(autologging_backends=["xgboost"])
def main(eta: float = 0.3, rounds: int = 8):
    params = {"objective": "multi:softprob", "num_class": 3, "eval_metric": "mlogloss",
              "eta": eta, "max_depth": 2, "nthread": 1}
    booster = xgb.train(
        params, xgb.DMatrix(X_train, label=y_train), num_boost_round=rounds,
        evals=[(xgb.DMatrix(X_valid, label=y_valid), "validation")], verbose_eval=False,
    )
    return {"final_mlogloss": float(booster.eval(xgb.DMatrix(X_valid, label=y_valid)).split(":")[1])}


if __name__ == "__main__":
    main()
"""


def run(folder: Path, script: str, **fields: Any) -> Any:
    from ml_experiment.config import load_config
    from ml_experiment.execution import run_job

    path = folder / "job.json"
    path.write_text(json.dumps({"run": [script], **fields}))
    return run_job(load_config(path))[0]


def logged_model_files(c: Any, run: Any) -> tuple[Any, list[str]]:
    """The model autologging logged from ``run`` (MLflow 3: a LoggedModel linked to the run)."""
    outputs = run.outputs.model_outputs if run.outputs else []
    assert len(outputs) == 1, f"run {run.info.run_id} has models {outputs}"
    model = c.get_logged_model(outputs[0].model_id)
    assert model.source_run_id == run.info.run_id
    return model, sorted(f.path for f in c.list_logged_model_artifacts(model.model_id))


def assert_autologging_is_off(folder: Path, experiment: str) -> None:
    """After the job, fitting a model logs nothing: autologging was switched off again."""
    import mlflow
    from sklearn.linear_model import LinearRegression

    before = len(all_runs(client(folder), experiment))
    LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
    assert mlflow.active_run() is None
    assert len(all_runs(client(folder), experiment)) == before
    assert not (folder / "mlruns").exists() and not (folder / "mlflow.db").exists()
    # The job pointed MLflow's fluent API at its knowledge center only while it ran.
    assert "MLFLOW_TRACKING_URI" not in os.environ


@pytest.mark.slow
def test_sklearn_autologging_in_an_experiment(workdir: Path) -> None:
    write(workdir / "train.py", SKLEARN_SCRIPT)
    outcome = run(workdir, "train.py", name="iris-lr", kind="experiment", params={"C": 0.5})

    c = client(workdir)
    (r,) = all_runs(c, "iris-lr")
    assert r.info.run_id == outcome.run_id and r.info.status == "FINISHED"
    # Our params and metrics...
    assert r.data.params["C"] == "0.5" and r.data.params["max_iter"] == "300"
    assert 0.8 < r.data.metrics["val_accuracy"] <= 1.0
    # ...and what sklearn autologging adds: every estimator param, training metrics, the model.
    assert r.data.params["solver"] == "lbfgs" and "tol" in r.data.params
    assert r.data.tags["estimator_name"] == "LogisticRegression"
    assert "training_accuracy_score" in r.data.metrics
    model, files = logged_model_files(c, r)
    assert "MLmodel" in files and "model.pkl" in files
    import mlflow.sklearn

    loaded = mlflow.sklearn.load_model(model.artifact_location)
    assert loaded.get_params()["C"] == 0.5
    assert_autologging_is_off(workdir, "iris-lr")


@pytest.mark.slow
def test_xgboost_autologging_in_an_experiment(workdir: Path) -> None:
    write(workdir / "train_xgb.py", XGBOOST_SCRIPT)
    outcome = run(workdir, "train_xgb.py", name="iris-xgb", kind="experiment")

    c = client(workdir)
    (r,) = all_runs(c, "iris-xgb")
    assert r.info.run_id == outcome.run_id and r.info.status == "FINISHED"
    assert r.data.params["eta"] == "0.3" and r.data.params["rounds"] == "8"
    # xgboost autologging: the booster params, the per-iteration evaluation, the model.
    assert r.data.params["num_boost_round"] == "8"
    assert r.data.params["objective"] == "multi:softprob" and r.data.params["max_depth"] == "2"
    history = c.get_metric_history(r.info.run_id, "validation-mlogloss")
    assert len(history) == 8
    assert history[-1].value == pytest.approx(r.data.metrics["final_mlogloss"], rel=1e-4)
    _, files = logged_model_files(c, r)
    assert "MLmodel" in files and any(f.startswith("model.") for f in files)


@pytest.mark.slow
def test_sklearn_autologging_in_each_group_trial(workdir: Path, ray_local: None) -> None:
    write(workdir / "train.py", SKLEARN_SCRIPT)
    outcome = run(
        workdir,
        "train.py",
        name="iris-search",
        kind="group",
        num_trials=3,
        sampler="random",
        seed=2,
        param_space={"C": "loguniform(0.01, 10)"},
        metric={"name": "val_accuracy", "direction": "maximize"},
        resources_per_worker={"cpu": 1},
    )
    assert outcome.counts == {"complete": 3, "fail": 0, "pruned": 0}

    c = client(workdir)
    runs = all_runs(c, "iris-search")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert parent.info.run_id == outcome.run_id and len(children) == 3
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        assert child.data.tags["ml_experiment.trial_state"] == "complete"
        # our params and metric, and the trial's sampled C is what the estimator got
        assert {"C", "max_iter", "solver"} <= set(child.data.params)
        assert (
            "val_accuracy" in child.data.metrics and "training_accuracy_score" in child.data.metrics
        )
        model, files = logged_model_files(c, child)
        assert "MLmodel" in files and "model.pkl" in files
        assert model.experiment_id == parent.info.experiment_id
    sampled = sorted(float(ch.data.params["C"]) for ch in children)
    assert len(set(sampled)) == 3 and all(0.01 <= v <= 10 for v in sampled)
    assert float(parent.data.tags["best_params.C"]) in sampled
    assert parent.outputs is None or not parent.outputs.model_outputs  # models sit on trials
    assert_autologging_is_off(workdir, "iris-search")


# -- rejected at decoration time --------------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("mlflow.fastai") is not None, reason="this MLflow has mlflow.fastai"
)
def test_backend_missing_from_mlflow_is_a_config_error_at_decoration() -> None:
    import mlflow

    with pytest.raises(ConfigError) as info:

        @job(autologging_backends=[AutologgingBackend.FASTAI])
        def main() -> None: ...

    message = str(info.value)
    assert message.startswith("@job: autologging_backends: FASTAI autologging is not available")
    assert f"MLflow {mlflow.__version__}" in message and "mlflow.fastai" in message
    assert "remove it from autologging_backends" in message


@pytest.mark.parametrize("bad", ["sklearnn", "catboost", 42])
def test_unknown_backend_is_a_config_error_listing_the_choices(bad: Any) -> None:
    with pytest.raises(ConfigError) as info:

        @job(autologging_backends=["sklearn", bad])
        def main() -> None: ...

    message = str(info.value)
    assert f"unknown autologging backend {bad!r}" in message
    assert "Available: XGBOOST, LIGHTGBM, KERAS, TENSORFLOW, SKLEARN, PYTORCH, FASTAI." in message


def test_backends_given_by_name_or_member_alone_or_in_a_list() -> None:
    @job(autologging_backends="SKLEARN")
    def one() -> None: ...

    @job(autologging_backends=[AutologgingBackend.XGBOOST, "sklearn"])
    def two() -> None: ...

    assert one.options.autologging_backends == (AutologgingBackend.SKLEARN,)
    assert two.options.autologging_backends == (
        AutologgingBackend.XGBOOST,
        AutologgingBackend.SKLEARN,
    )
