"""Loading job files and CLI overrides, and the one-line errors for malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml_experiment.config import (
    ExperimentConfig,
    GroupConfig,
    JobConfig,
    MetricConfig,
    load_config,
    read_mapping,
)
from ml_experiment.exceptions import ConfigError

BAD = Path(__file__).resolve().parents[1] / "data" / "bad_configs"
SENTINEL = Path("/tmp/ml-experiment-pwned")  # what injection_import.yaml would create

SPEC_EXAMPLE = """\
name: SVM                 # required
kind: group
params: {C: 1.0}
param_space:
  C: loguniform(0.01, 1000)
  kernel: choice(['rbf', 'poly', 'linear'])
  gamma: choice(['scale', 'auto'])
  degree: range(2, 5)
  layers: [range(2, 20), range(2, 20)]
num_trials: 50
sampler: tpe
pruner: hyperband
timeout_per_trial: 600
metric: {name: val_accuracy, direction: maximize}
resources_per_worker: {cpu: 1, gpu: 0.5}
ray_config: {num_cpus: 4, num_gpus: 1, address: null}
docker_config: {image: "name:tag"}
seed: 1234
run:
  - scripts/train.py
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "train.py").write_text("def main():\n    return {}\n")
    (tmp_path / "svm.yaml").write_text(SPEC_EXAMPLE)
    return tmp_path


def test_spec_example(project: Path) -> None:
    cfg = load_config(project / "svm.yaml")
    assert isinstance(cfg, GroupConfig)
    assert cfg.run == [(project / "scripts" / "train.py").resolve()]
    assert cfg.source == (project / "svm.yaml").resolve()
    assert [str(d) for d in cfg.param_space["layers"]] == ["range(2, 20)", "range(2, 20)"]
    assert cfg.param_space["kernel"].args == ("rbf", "poly", "linear")
    assert (cfg.num_trials, cfg.pruner, cfg.timeout_per_trial, cfg.seed) == (
        50,
        "hyperband",
        600,
        1234,
    )
    assert cfg.metric == MetricConfig(name="val_accuracy")
    assert (cfg.ray_config.num_cpus, cfg.resources_per_worker.gpu) == (4, 0.5)
    assert cfg.docker_config is not None and cfg.docker_config.image == "name:tag"


def test_loads_from_any_working_directory(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project / "scripts")
    assert load_config("../svm.yaml").run == [(project / "scripts" / "train.py").resolve()]


def test_json_file(project: Path) -> None:
    path = project / "job.json"
    path.write_text(json.dumps({"name": "j", "kind": "job", "run": ["scripts/train.py"]}))
    cfg = load_config(str(path))
    assert isinstance(cfg, JobConfig) and cfg.name == "j"


def test_default_kind_is_experiment(project: Path) -> None:
    (project / "e.yml").write_text("name: e\nrun: [scripts/train.py]\nparams: {lr: 1e-5, n: 3}\n")
    cfg = load_config(project / "e.yml")
    assert isinstance(cfg, ExperimentConfig)
    # YAML 1.1 would read 1e-5 as a string; users mean a float.
    assert cfg.params == {"lr": 1e-5, "n": 3}


def test_kind_is_case_insensitive(project: Path) -> None:
    (project / "g.yaml").write_text("name: g\nkind: Group\nrun: [scripts/train.py]\n")
    assert isinstance(load_config(project / "g.yaml"), GroupConfig)


def test_dict_overrides_merge_and_win(project: Path) -> None:
    cfg = load_config(
        project / "svm.yaml",
        {
            "params": {"C": 2, "extra": True},
            "param_space": {"C": "uniform(1, 2)"},
            "ray_config": {"num_cpus": 2},
            "resources_per_worker": {"gpu": 1},
            "metric": {"direction": "minimize"},
            "num_trials": 5,
            "sampler": "random",
            "timeout_per_trial": None,  # an unset CLI option changes nothing
        },
    )
    assert isinstance(cfg, GroupConfig)
    assert cfg.params == {"C": 2, "extra": True}
    assert str(cfg.param_space["C"]) == "uniform(1, 2)" and "kernel" in cfg.param_space
    assert (cfg.ray_config.num_cpus, cfg.ray_config.num_gpus) == (2, 1)
    assert (cfg.resources_per_worker.cpu, cfg.resources_per_worker.gpu) == (1, 1)
    assert cfg.metric == MetricConfig(name="val_accuracy", direction="minimize")
    assert (cfg.num_trials, cfg.sampler, cfg.timeout_per_trial) == (5, "random", 600)


def test_metric_list_override_replaces(project: Path) -> None:
    cfg = load_config(project / "svm.yaml", {"metric": [{"name": "a"}, {"name": "b"}]})
    assert [m.name for m in cfg.metric] == ["a", "b"]  # type: ignore[union-attr]


def test_docker_override_replaces_image_with_dockerfile(project: Path) -> None:
    (project / "Dockerfile").write_text("FROM python:3.11\n")
    cfg = load_config(project / "svm.yaml", {"docker_config": {"dockerfile": "Dockerfile"}})
    assert cfg.docker_config is not None
    assert (cfg.docker_config.image, cfg.docker_config.dockerfile) == (None, "Dockerfile")


def test_run_override_is_relative_to_cwd(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project / "scripts")
    (project / "scripts" / "other.py").write_text("")
    cfg = load_config(project / "svm.yaml", {"run": ["other.py"]})
    assert cfg.run == [(project / "scripts" / "other.py").resolve()]


def test_kind_override(project: Path) -> None:
    (project / "e.yaml").write_text("name: e\nrun: [scripts/train.py]\n")
    cfg = load_config(project / "e.yaml", {"kind": "group", "num_trials": 3})
    assert isinstance(cfg, GroupConfig) and cfg.num_trials == 3


def test_overrides_alone(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    cfg = load_config(None, {"name": "cli", "run": ["scripts/train.py"], "params": {"a": 1}})
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.source is None and cfg.params == {"a": 1}


def test_overrides_alone_must_be_complete() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"name": "cli"})
    assert str(info.value) == "command line: run: is required"
    assert (info.value.source, info.value.field) == ("command line", "run")


def test_error_format_names_file_field_and_value(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    with pytest.raises(ConfigError) as info:
        load_config("svm.yaml", {"num_trials": -5})
    assert str(info.value) == "svm.yaml: num_trials: must be >= 1, got -5"
    with pytest.raises(ConfigError) as info:
        load_config("svm.yaml", {"param_space": {"C": "loguniform(0, 10)"}})
    assert (
        str(info.value) == "svm.yaml: param_space.C: loguniform needs 0 < low < high, got (0, 10)"
    )
    assert info.value.reason == "loguniform needs 0 < low < high, got (0, 10)"


def test_unknown_key_suggests_a_field(project: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'num_trials'"):
        load_config(project / "svm.yaml", {"num_trails": 3})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found"):
        load_config(tmp_path / "nope.yaml")


def test_directory_is_not_a_job_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_read_mapping_inline() -> None:
    assert read_mapping('{"C": 2, "lr": 1e-5}', what="--params") == {"C": 2, "lr": 1e-5}
    assert read_mapping("{C: 2, kernel: rbf}", what="--params") == {"C": 2, "kernel": "rbf"}
    assert read_mapping("lr: 1e-5", what="--params") == {"lr": 1e-5}


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_read_mapping_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"p{suffix}"
    path.write_text(json.dumps({"C": [1, 2]}))
    assert read_mapping(str(path), what="--params") == {"C": [1, 2]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must be a JSON/YAML mapping"),
        ("C=1", "must be a JSON/YAML mapping"),
        ("", "must be a JSON/YAML mapping"),
        ("{C: [1, 2}", "invalid YAML at line 1"),
        ("missing.yaml", "file not found"),
    ],
)
def test_read_mapping_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_mapping(text, what="--params")
    assert info.value.source == "--params"
    assert message in str(info.value) and "\n" not in str(info.value)


def _expectations() -> list[tuple[str, str, str]]:
    """(file name, "field" or "message", expected substring) for every file in the corpus."""
    table = json.loads((BAD / "expectations.json").read_text())
    cases = []
    for path in sorted(BAD.iterdir()):
        if path.name in ("expectations.json", "train.py"):
            continue
        if path.name in table:
            ((what, expected),) = table[path.name].items()
        else:
            first = path.read_text().splitlines()[0]
            what, _, expected = first.removeprefix("# expect").partition(":")
            what = what.removeprefix("-") or "field"
        cases.append((path.name, what, expected.strip()))
    return cases


CASES = _expectations()


def test_corpus_is_large_and_annotated() -> None:
    assert len(CASES) >= 30
    assert all(what in ("field", "message") and expected for _, what, expected in CASES), CASES


@pytest.mark.parametrize(("name", "what", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_config(name: str, what: str, expected: str) -> None:
    path = BAD / name
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert name in message
    if what == "field":
        assert info.value.field is not None and expected in info.value.field, message
        assert f": {info.value.field}: " in message
    else:
        assert info.value.field is None
    assert expected in message
    assert not SENTINEL.exists()


def test_read_mapping_long_inline_json_is_not_a_path() -> None:
    value = {f"key_{i}": i for i in range(40)}
    text = json.dumps(value)
    assert len(text) > 255
    assert read_mapping(text, what="--params") == value


def test_flow_mapping_split_by_yaml_is_explained() -> None:
    # YAML reads `{b: uniform(0, 1)}` as {'b': 'uniform(0', '1)': None}.
    path = BAD / "param_space_flow_mapping_split.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == "param_space.b"
    assert "YAML split 'uniform(0'" in str(info.value) and "quote each distribution" in str(
        info.value
    )
