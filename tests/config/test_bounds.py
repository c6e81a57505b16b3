"""Job files are bounded: size on disk, size once YAML aliases expand, nesting depth."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ml_experiment.config import load_config, read_mapping
from ml_experiment.config._bounds import MAX_FILE_BYTES
from ml_experiment.exceptions import ConfigError

BAD = Path(__file__).resolve().parents[1] / "data" / "bad_configs"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "t.py").write_text("")
    return tmp_path


def test_alias_bomb_is_refused_before_it_expands() -> None:
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="alias bomb") as info:
        load_config(BAD / "alias_bomb.yaml")
    assert time.perf_counter() - started < 5  # it used to take 73 s and 5.6 GB
    assert str(info.value).startswith(f"{BAD / 'alias_bomb.yaml'}: ")


def test_aliases_within_the_limit_still_work(project: Path) -> None:
    (project / "j.yaml").write_text(
        "name: j\nrun: [t.py]\nparams:\n  base: &b {lr: 0.1, layers: [1, 2]}\n  copy: *b\n"
    )
    cfg = load_config(project / "j.yaml")
    assert cfg.params["copy"] == {"lr": 0.1, "layers": [1, 2]}


def test_a_huge_file_is_refused_unread(project: Path) -> None:
    big = project / "big.yaml"
    with big.open("w") as f:
        f.write("name: big\nrun: [t.py]\nparams:\n")
        line = "  p{}: " + "x" * 1000 + "\n"
        for i in range(19_000):  # about 19 MB
            f.write(line.format(i))
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"big\.yaml: is 19\.\d MB, over the 1024 KiB"):
        load_config(big)
    assert time.perf_counter() - started < 5  # it used to take 130 s and 3.3 GB
    with pytest.raises(ConfigError, match=r"^--params: .*big\.yaml: is 19\.\d MB"):
        read_mapping(str(big), what="--params")


def test_inline_text_is_bounded_too() -> None:
    text = json.dumps({"s": "x" * (MAX_FILE_BYTES + 1)})
    with pytest.raises(ConfigError, match=r"^--params: is 1\.0 MB"):
        read_mapping(text, what="--params")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_deep_nesting_is_one_line(project: Path, suffix: str) -> None:
    path = project / f"deep{suffix}"
    depth = 5000
    path.write_text(
        json.dumps({"name": "d", "run": ["t.py"]})[:-1]
        + ', "params": {"a": '
        + "[" * depth
        + "]" * depth
        + "}}"
    )
    with pytest.raises(ConfigError, match="nested more than 100 levels deep"):
        load_config(path)


def test_large_param_within_bounds_dumps_quickly(project: Path) -> None:
    # The knowledge center cuts long logged text (tracking); the config itself stays whole.
    cfg = load_config(
        None, {"name": "n", "run": [str(project / "t.py")], "params": {"s": "x" * 900_000}}
    )
    started = time.perf_counter()
    assert len(cfg.resolved_dict()["params"]["s"]) == 900_000
    assert time.perf_counter() - started < 5
