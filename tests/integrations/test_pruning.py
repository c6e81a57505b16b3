"""Optuna's pruning callbacks through ``ml_experiment.integrations``: lazy, with a clear error
naming the pip extra, and pruning real XGBoost trials of a group running on Ray."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import all_runs, client, write

from ml_experiment.exceptions import MissingDependencyError
from ml_experiment.integrations._pruning import PRUNING_CALLBACKS

HEAVY = ("xgboost", "lightgbm", "tensorflow", "torch", "keras", "lightning", "fastai", "catboost")


def test_importing_integrations_imports_no_framework() -> None:
    code = (
        "import sys, ml_experiment.integrations as i\n"
        "from ml_experiment.integrations import AutologgingBackend\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
        "i.XGBoostPruningCallback\n"
        "print('xgboost' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.splitlines()
    assert out == ["[]", "True"]  # only the access imports the framework


def test_pruning_callbacks_are_optuna_integration_classes() -> None:
    import optuna_integration.xgboost

    from ml_experiment import integrations

    assert integrations.XGBoostPruningCallback is optuna_integration.xgboost.XGBoostPruningCallback
    assert set(PRUNING_CALLBACKS) <= set(integrations.__all__)
    with pytest.raises(AttributeError, match="NoSuchPruningCallback"):
        integrations.NoSuchPruningCallback  # noqa: B018


@pytest.mark.skipif(
    importlib.util.find_spec("lightgbm") is not None, reason="lightgbm is installed"
)
def test_missing_framework_names_the_pip_extra() -> None:
    from ml_experiment import integrations

    with pytest.raises(MissingDependencyError) as info:
        integrations.LightGBMPruningCallback  # noqa: B018
    assert "pip install 'ml-experiment[lightgbm]'" in str(info.value)
    assert "LightGBMPruningCallback needs the `lightgbm` package" in str(info.value)
    assert isinstance(info.value, ImportError)  # `from ... import` fails like a missing module
    with pytest.raises(MissingDependencyError, match=r"ml-experiment\[lightgbm\]"):
        from ml_experiment.integrations import LightGBMPruningCallback  # noqa: F401


@pytest.mark.parametrize(
    "name",
    [
        n
        for n, (_, package, _) in PRUNING_CALLBACKS.items()
        if importlib.util.find_spec(package) is None
    ],
)
def test_every_missing_framework_is_a_clear_error(name: str) -> None:
    from ml_experiment import integrations

    extra = PRUNING_CALLBACKS[name][2]
    with pytest.raises(MissingDependencyError, match=rf"pip install 'ml-experiment\[{extra}\]'"):
        getattr(integrations, name)


# -- a real search that prunes ----------------------------------------------------------------

XGB_OBJECTIVE = """
import xgboost as xgb
from sklearn.datasets import load_digits
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

from ml_experiment import Trial, job
from ml_experiment.integrations import XGBoostPruningCallback

X, y = load_digits(return_X_y=True)
X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.3, random_state=0)


@job
def main(eta: float = 0.1, max_depth: int = 3, rounds: int = 25):
    dtrain = xgb.DMatrix(X_train, label=y_train)
    dvalid = xgb.DMatrix(X_valid, label=y_valid)
    params = {
        "objective": "multi:softprob", "num_class": 10, "eval_metric": "mlogloss",
        "eta": eta, "max_depth": max_depth, "nthread": 1, "verbosity": 0, "seed": 0,
    }
    # xgboost names each evaluation "<evals name>-<eval_metric>".
    pruning = XGBoostPruningCallback(Trial.get_current(), "validation-mlogloss")
    booster = xgb.train(
        params, dtrain, num_boost_round=rounds, evals=[(dvalid, "validation")],
        callbacks=[pruning], verbose_eval=False,
    )
    return {"val_mlogloss": log_loss(y_valid, booster.predict(dvalid), labels=list(range(10)))}


if __name__ == "__main__":
    main()
"""


@pytest.mark.slow
def test_xgboost_trials_are_pruned_and_recorded(workdir: Path, ray_local: None) -> None:
    import optuna
    from optuna.trial import TrialState

    from ml_experiment.config import load_config
    from ml_experiment.execution import run_job
    from ml_experiment.hpo import open_storage

    write(workdir / "xgb_search.py", XGB_OBJECTIVE)
    (workdir / "xgb.json").write_text(
        json.dumps(
            {
                "name": "xgb",
                "kind": "group",
                "report": False,
                "num_trials": 20,
                "sampler": "random",
                "pruner": "median",
                "seed": 5,
                "param_space": {"eta": "loguniform(0.01, 0.5)", "max_depth": "range(1, 6)"},
                "metric": {"name": "val_mlogloss", "direction": "minimize"},
                "resources_per_worker": {"cpu": 1},
                "run": ["xgb_search.py"],
            }
        )
    )
    outcome = run_job(load_config(workdir / "xgb.json"))[0]

    study = optuna.load_study(
        study_name="xgb", storage=open_storage(str(workdir / "optuna-studies.journal"))
    )
    by_state = {s: [t for t in study.trials if t.state == s] for s in TrialState}
    pruned, complete = by_state[TrialState.PRUNED], by_state[TrialState.COMPLETE]
    assert len(study.trials) == 20
    assert len(pruned) >= 1 and len(pruned) + len(complete) == 20
    assert outcome.counts == {"complete": len(complete), "fail": 0, "pruned": len(pruned)}
    for t in pruned:  # stopped at the round whose report the pruner judged
        last = max(t.intermediate_values)
        assert last <= 24 and t.user_attrs.get("ml_experiment.error", "").startswith(
            f"Trial was pruned at iteration {last}"
        )
    for t in complete:
        assert len(t.intermediate_values) == 25
        assert t.value == pytest.approx(t.intermediate_values[24], rel=1e-3)

    children = {
        int(r.data.tags["ml_experiment.trial_number"]): r
        for r in all_runs(client(workdir), "xgb")
        if "mlflow.parentRunId" in r.data.tags
    }
    assert sorted(children) == list(range(20))
    for t in pruned:
        run = children[t.number]
        assert run.data.tags["ml_experiment.trial_state"] == "pruned"
        assert run.info.status == "KILLED"
        assert "pruned at iteration" in run.data.tags["error"]
    for t in complete:
        run = children[t.number]
        assert run.data.tags["ml_experiment.trial_state"] == "complete"
        assert run.info.status == "FINISHED"
        assert run.data.metrics["val_mlogloss"] == pytest.approx(t.value)
