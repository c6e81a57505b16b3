"""The pydantic models, used directly (the loader is tested in test_loader.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

import ml_experiment.config as config
from ml_experiment.config import (
    AnyJobConfig,
    Distribution,
    DockerConfig,
    ExperimentConfig,
    GroupConfig,
    JobConfig,
    MetricConfig,
    RayConfig,
    ResourcesConfig,
)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text("def main():\n    return {}\n")
    return path


def group(script: Path, **fields) -> GroupConfig:
    return GroupConfig(name="g", run=[script], **fields)


def test_public_names_are_exported() -> None:
    for name in config.__all__:
        assert hasattr(config, name), name
    assert set(get_args(AnyJobConfig)) == {JobConfig, ExperimentConfig, GroupConfig}


def test_import_does_not_pull_heavy_dependencies() -> None:
    src = str(Path(config.__file__).resolve().parents[2])
    code = (
        "import sys, ml_experiment.config; "
        "print(sorted(m for m in ('optuna', 'mlflow', 'ray') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_kinds_and_defaults(script: Path) -> None:
    assert JobConfig(name="j", run=[script]).kind == "job"
    exp = ExperimentConfig(name="e", run=[script])
    assert (exp.kind, exp.ray_config, exp.params, exp.seed) == ("experiment", None, {}, None)
    g = group(script)
    assert (g.kind, g.num_trials, g.sampler, g.pruner) == ("group", 10, "tpe", "median")
    assert g.ray_config == RayConfig() and g.resources_per_worker == ResourcesConfig()
    assert g.metric is None and g.param_space == {}


def test_wrong_kind_for_model(script: Path) -> None:
    with pytest.raises(ValidationError, match=r"kind\s+Input should be 'job'"):
        JobConfig(name="j", kind="group", run=[script])


def test_group_fields_are_forbidden_in_experiment(script: Path) -> None:
    with pytest.raises(ValidationError, match="num_trials"):
        ExperimentConfig(name="e", run=[script], num_trials=3)


def test_param_space_strings_are_parsed(script: Path) -> None:
    g = group(script, param_space={"C": "loguniform(0.01, 1000)", "layers": ["range(2, 5)"] * 2})
    assert isinstance(g.param_space["C"], Distribution)
    assert g.param_space["C"].kind == "loguniform"
    assert [d.args for d in g.param_space["layers"]] == [(2, 5, 1), (2, 5, 1)]


def test_param_space_accepts_distributions(script: Path) -> None:
    dist = config.parse_distribution("uniform(0, 1)")
    assert group(script, param_space={"p": dist}).param_space["p"] is dist


def test_yaml_split_flow_list_is_rejoined(script: Path) -> None:
    # What YAML makes of `layers: [range(2, 20), range(2, 20, 3)]`.
    g = group(script, param_space={"layers": ["range(2", "20)", "range(2", 20, "3)"]})
    assert [str(d) for d in g.param_space["layers"]] == ["range(2, 20)", "range(2, 20, 3)"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (5, "must be a distribution such as 'uniform(0, 1)' or a list of them, got 5"),
        (None, "must be a distribution such as 'uniform(0, 1)' or a list of them, got None"),
        (
            {"a": 1},
            "must be a distribution such as 'uniform(0, 1)' or a list of them, got {'a': 1}",
        ),
        ([], "must not be an empty list"),
        (["uniform(0, 1)", 3], "[1]: expected a distribution such as 'uniform(0, 1)', got 3"),
    ],
)
def test_param_space_rejects_non_distributions(script: Path, bad: object, message: str) -> None:
    with pytest.raises(
        ValidationError, match=r"param_space\.x\s+Value error, " + re.escape(message)
    ):
        group(script, param_space={"x": bad})


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("TPE", "tpe"),
        ("Random", "random"),
        ("cmaes", "cmaes"),
        ("GP", "gp"),
        ("qmc", "qmc"),
        ("nsga2", "nsga2"),
        (" grid ", "grid"),
    ],
)
def test_samplers_case_insensitive(script: Path, given: str, stored: str) -> None:
    assert group(script, sampler=given).sampler == stored


def test_unknown_sampler_message(script: Path) -> None:
    with pytest.raises(ValidationError) as info:
        group(script, sampler="tpee")
    assert "Unknown sampler 'tpee'. Available: tpe, random, cmaes, gp, qmc, grid, nsga2." in str(
        info.value
    )


def test_skopt_points_to_gp(script: Path) -> None:
    with pytest.raises(ValidationError) as info:
        group(script, sampler="skopt")
    assert (
        "The skopt sampler was removed from Optuna; use 'gp' (Gaussian-process Bayesian "
        "optimisation) instead." in str(info.value)
    )


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Hyperband", "hyperband"),
        ("sha", "sha"),
        ("SuccessiveHalving", "sha"),
        ("median", "median"),
        ("percentile", "percentile"),
        ("none", "none"),
        (None, "none"),
    ],
)
def test_pruners(script: Path, given: str | None, stored: str) -> None:
    assert group(script, pruner=given).pruner == stored


def test_unknown_pruner(script: Path) -> None:
    with pytest.raises(ValidationError, match=r"Unknown pruner 'asha'\. Available: hyperband, sha"):
        group(script, pruner="asha")


def test_grid_needs_discrete_distributions(script: Path) -> None:
    ok = group(script, sampler="grid", param_space={"a": "choice([1, 2])", "b": ["range(0, 3)"]})
    assert ok.sampler == "grid"
    with pytest.raises(ValidationError, match="grid sampler needs choice, range or randint"):
        group(script, sampler="grid", param_space={"a": "choice([1])", "b": "uniform(0, 1)"})


def test_metric_forms(script: Path) -> None:
    single = group(script, metric={"name": "acc", "direction": "MINIMIZE"}).metric
    assert single == MetricConfig(name="acc", direction="minimize")
    assert group(script, metric="acc").metric == MetricConfig(name="acc")
    multi = group(script, metric=[{"name": "acc"}, {"name": "loss", "direction": "minimize"}])
    assert multi.is_multi_objective
    assert [m.direction for m in multi.metric] == ["maximize", "minimize"]
    assert not group(script, metric="acc").is_multi_objective


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ({"name": "a", "direction": "up"}, r"direction\s+Input should be 'maximize' or 'minimize'"),
        ({"name": ""}, r"name\s+String should have at least 1 character"),
        ([], r"a metric list needs at least one metric, got \[\]"),
        ([{"name": "a"}, {"name": "a"}], r"\[1\]\.name: duplicate metric name 'a'"),
        ({"name": "a", "goal": "max"}, r"goal\s+Extra inputs are not permitted"),
    ],
)
def test_bad_metrics(script: Path, metric: object, message: str) -> None:
    with pytest.raises(ValidationError, match=r"(?s)metric\b.*" + message):
        group(script, metric=metric)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_trials", 0, r"num_trials\s+Input should be greater than or equal to 1"),
        ("num_trials", True, r"num_trials\s+Value error, must be a number, got True"),
        ("timeout_per_trial", 0, r"timeout_per_trial\s+Input should be greater than 0"),
        ("seed", -1, r"seed\s+Input should be greater than or equal to 0"),
        ("seed", 2**32, r"seed\s+Input should be less than 4294967296"),
        (
            "resources_per_worker",
            {"cpu": 0},
            r"resources_per_worker\.cpu\s+Input should be greater than 0",
        ),
        (
            "resources_per_worker",
            {"gpu": -1},
            r"resources_per_worker\.gpu\s+Input should be greater than or equal to 0",
        ),
    ],
)
def test_bounds(script: Path, field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        group(script, **{field: value})


def test_bounds_inclusive_edges(script: Path) -> None:
    g = group(script, num_trials=1, seed=2**32 - 1, resources_per_worker={"cpu": 0.5, "gpu": 0.25})
    assert (g.num_trials, g.seed, g.resources_per_worker.gpu) == (1, 2**32 - 1, 0.25)


def test_ray_config_extras() -> None:
    ray = RayConfig(
        address="auto", num_cpus=2, runtime_env={"env_vars": {"A": "1"}}, log_to_driver=False
    )
    assert ray.init_kwargs() == {"runtime_env": {"env_vars": {"A": "1"}}, "log_to_driver": False}
    assert RayConfig().init_kwargs() == {}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"num_cpus": 0}, r"num_cpus\s+Input should be greater than or equal to 1"),
        ({"num_gpus": -1}, r"num_gpus\s+Input should be greater than or equal to 0"),
        ({"x": object()}, r"x: must be JSON-like data, got <object object"),
        ({"x": {1: "a"}}, r"x: keys must be strings, got 1"),
    ],
)
def test_ray_config_rejects(bad: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RayConfig(**bad)


def test_docker_config_needs_exactly_one_source() -> None:
    assert DockerConfig(image="python:3.11").image == "python:3.11"
    assert DockerConfig(dockerfile="Dockerfile", context=".", args={"V": "1"}).args == {"V": "1"}
    for bad in ({}, {"image": "a", "dockerfile": "b"}, {"context": "."}):
        with pytest.raises(ValidationError, match="exactly one of 'image' or 'dockerfile'"):
            DockerConfig(**bad)


def test_run_is_resolved_against_the_job_file(tmp_path: Path, script: Path) -> None:
    (tmp_path / "sub").mkdir()
    job = ExperimentConfig(name="e", run=["../train.py"], source=tmp_path / "sub" / "job.yaml")
    assert job.run == [script.resolve()]
    assert job.source == (tmp_path / "sub" / "job.yaml").resolve()


def test_run_without_file_is_relative_to_cwd(
    tmp_path: Path, script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert ExperimentConfig(name="e", run="train.py").run == [script.resolve()]


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ([], r"run\s+Value should have at least 1 item"),
        (["missing.py"], r"run\[0\]: script not found: 'missing.py' \(looked for '.*missing.py'\)"),
        (["."], r"run\[0\]: is not a Python script \(\.py\), got '\.'"),
    ],
)
def test_run_must_name_existing_files(tmp_path: Path, run: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExperimentConfig(name="e", run=run, source=tmp_path / "job.yaml")


def test_blank_name_rejected(script: Path) -> None:
    with pytest.raises(ValidationError, match="must not be empty"):
        ExperimentConfig(name="  ", run=[script])


def test_resolved_dict_is_json(script: Path, tmp_path: Path) -> None:
    g = GroupConfig(
        name="g",
        run=["train.py"],
        source=tmp_path / "job.yaml",
        params={"C": 1.0},
        param_space={"lr": "loguniform(1e-4, 1)", "layers": ["range(2, 20)", "range(2, 20)"]},
        metric=[{"name": "acc"}, {"name": "loss", "direction": "minimize"}],
        ray_config={"num_cpus": 2, "runtime_env": {"pip": ["numpy"]}},
        docker_config={"image": "python:3.11"},
    )
    data = g.resolved_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["param_space"] == {
        "lr": "loguniform(1e-4, 1)",
        "layers": ["range(2, 20)", "range(2, 20)"],
    }
    assert data["run"] == [str(script.resolve())]
    assert data["source"] == str((tmp_path / "job.yaml").resolve())
    assert list(data)[-1] == "source"
    assert data["ray_config"]["runtime_env"] == {"pip": ["numpy"]}
    assert data["metric"][1] == {"name": "loss", "direction": "minimize"}
    # The dump validates back to an equal config.
    data.pop("source")
    assert (
        GroupConfig.model_validate(data).resolved_dict()["param_space"]
        == g.resolved_dict()["param_space"]
    )


def test_sub_model_resolved_dict() -> None:
    assert MetricConfig(name="a").resolved_dict() == {"name": "a", "direction": "maximize"}
    assert RayConfig(foo=1).resolved_dict() == {
        "address": None,
        "num_cpus": None,
        "num_gpus": None,
        "foo": 1,
    }
