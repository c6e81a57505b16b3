"""Synthetic groups written the way the group driver writes them (journal study + MLflow runs)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SPACE = {
    "lr": "loguniform(0.0001, 1)",
    "depth": "range(2, 15)",
    "act": "choice(['relu', 'selu', 'tanh'])",
}


@dataclass
class Synth:
    uri: str
    parent_run_id: str
    name: str
    storage: str
    trial_runs: dict[int, str]


def synth_group(
    base: Path,
    *,
    name: str = "synth",
    n: int = 12,
    objectives: tuple[tuple[str, str], ...] = (("acc", "maximize"),),
    workers: int = 3,
    steps: int = 6,
    seed: int = 0,
) -> Synth:
    """A finished group of ``n`` trials: complete, pruned, failed and timed-out ones."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from ml_experiment.hpo import open_storage
    from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kc = KnowledgeCenter.resolve(f"sqlite:///{base / 'mlruns.db'}")
    tracker = MLflowTracker(kc)
    storage_path = str(kc.studies_path)
    study = optuna.create_study(
        study_name=name, storage=open_storage(storage_path), directions=[d for _, d in objectives]
    )
    parent = tracker.create_run(
        name,
        run_name=name,
        tags={
            "ml_experiment.kind": "group",
            "ml_experiment.study": name,
            "ml_experiment.study_storage": storage_path,
        },
    )
    tracker.log(
        parent,
        params={
            **{f"param_space.{k}": v for k, v in SPACE.items()},
            "metric": ", ".join(f"{m} ({d})" for m, d in objectives),
            "num_trials": n,
        },
    )
    study.set_user_attr("ml_experiment.parent_run_id", parent)
    dists = {
        "lr": FloatDistribution(1e-4, 1, log=True),
        "depth": IntDistribution(2, 14),
        "act": CategoricalDistribution(["relu", "selu", "tanh"]),
    }
    rng = random.Random(seed)
    free = [1_700_000_000.0] * workers  # when each worker is next free
    frozen, runs = [], []
    fails = 0
    for number in range(n):
        p = {
            "lr": 10 ** rng.uniform(-4, 0),
            "depth": rng.randint(2, 14),
            "act": rng.choice(["relu", "selu", "tanh"]),
        }
        quality = 1 - abs(math.log10(p["lr"]) + 2) / 4 - abs(p["depth"] - 6) / 30
        roll = rng.random()
        state = "fail" if roll < 0.1 else "pruned" if roll < 0.3 else "complete"
        error = None
        if state == "fail":
            fails += 1
            error = (
                "timed out: ran longer than timeout_per_trial=5.0s and was stopped"
                if fails % 2
                else "ValueError: depth too large for the data"
            )
        last = steps if state == "complete" else max(1, steps // 3)
        curve = {
            i: round(0.3 + quality * 0.6 * (1 - math.exp(-(i + 1) / 2)), 5) for i in range(last)
        }
        values = [curve[last - 1]] + [0.1 + p["depth"] / 20 + rng.random() * 0.05] * (
            len(objectives) - 1
        )
        lane = min(range(workers), key=lambda i: free[i])
        start = free[lane] + 0.05
        end = start + 1.0 + rng.random() * 3
        free[lane] = end
        ts = optuna.trial.TrialState
        frozen.append(
            optuna.trial.create_trial(
                params=p,
                distributions=dists,
                state={"fail": ts.FAIL, "pruned": ts.PRUNED, "complete": ts.COMPLETE}[state],
                values=values if state == "complete" else None,
                intermediate_values=curve if state != "fail" else {},
                user_attrs={"ml_experiment.error": error} if error else {},
            )
        )
        metrics: dict[str, float] = {"duration_s": end - start}
        if state == "complete":
            metrics.update({m: v for (m, _), v in zip(objectives, values, strict=True)})
        tags: dict[str, Any] = {
            "ml_experiment.trial_number": number,
            "ml_experiment.trial_state": state,
        }
        if error:
            tags["error"] = error
        runs.append(
            dict(
                run_name=f"trial-{number}",
                status={"complete": "FINISHED", "fail": "FAILED", "pruned": "KILLED"}[state],
                start_time=start,
                end_time=end,
                tags=tags,
                parent_run_id=parent,
                params=p,
                metrics=metrics,
                step=last - 1,
                steps=[(i, {objectives[0][0]: v}) for i, v in curve.items()]
                if state != "fail"
                else [],
            )
        )
    study.add_trials(frozen)
    ids = {}
    for number, kwargs in enumerate(runs):
        ids[number] = tracker.record_run(name, **kwargs)
    tracker.end_run(parent, "FINISHED")
    return Synth(kc.tracking_uri, parent, name, storage_path, ids)


@pytest.fixture(scope="session")
def kc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One knowledge center for the tests of this folder (creating one costs ~2 s of migrations)."""
    from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

    base = tmp_path_factory.mktemp("kc")
    MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{base / 'mlruns.db'}")).experiment_id("_")
    return base
