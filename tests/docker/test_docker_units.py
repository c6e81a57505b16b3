"""The Docker runner's and packager's pure parts (no engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_experiment.exceptions import ConfigError
from ml_experiment.execution._docker import container_mounts
from ml_experiment.execution._docker_engine import ImageInfo, tag_name
from ml_experiment.execution._docker_wheels import parse_requirements
from ml_experiment.package._lock import Lock, imported_modules


def test_mounts_are_the_fewest_folders_that_cover_all(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    got = container_mounts([a / "x", a, b / "y" / "z", b / "y", a / "x" / "deep"])
    assert got == [str(a), str(b / "y")]


def test_system_folders_are_never_mounted_over() -> None:
    with pytest.raises(ConfigError, match="cannot mount '/'"):
        container_mounts([Path("/")])
    with pytest.raises(ConfigError, match="cannot mount '/usr'"):
        container_mounts([Path("/usr/lib/x"), Path("/usr")])


def test_recorded_requirements_split_into_pins_and_local_installs() -> None:
    pins = parse_requirements(
        "# Installed distributions, Python 3.11.7\n"
        "numpy==2.4.6\n"
        "ml-experiment==0.2.0  # from file:///work/main (editable)\n"
        "mylib==1.0  # from git+https://example.invalid/mylib@abc\n"
        "Scikit_Learn==1.9.1\n"
    )
    assert pins.exact == {
        "numpy": ("numpy", "2.4.6"),
        "mylib": ("mylib", "1.0"),
        "scikit-learn": ("Scikit_Learn", "1.9.1"),
    }
    assert pins.local == {
        "ml-experiment": ("ml-experiment", "0.2.0", "file:///work/main (editable)")
    }
    assert pins.constraints(without=("numpy",)) == "mylib==1.0\nScikit_Learn==1.9.1\n"


def test_the_lock_pins_each_wheel_by_hash_and_lists_what_was_left_out() -> None:
    lock = Lock(parse_requirements("numpy==2.4.6\npytest==9.2.0\n"))
    lock.wheels["numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl"] = "ab" * 32
    text = lock.text()
    assert f"numpy==2.4.6 --hash=sha256:{'ab' * 32}" in text
    assert "#   pytest==9.2.0" in text


def test_imports_of_the_code_name_the_distributions(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(
        "import os, json\nimport numpy as np\nfrom sklearn.svm import SVC\n"
        "from . import rel\nimport helper\nfrom helper import x\n"
    )
    (tmp_path / "helper.py").write_text("import yaml\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    assert imported_modules(tmp_path) == {"numpy", "sklearn", "yaml"}


def test_image_tags_say_what_ran() -> None:
    made = ImageInfo("img:1", "sha256:b", None, base_id="sha256:a")
    assert made.tags() == {
        "container.runtime": "docker",
        "container.image": "img:1",
        "container.image_id": "sha256:b",
        "container.base_image_id": "sha256:a",
    }
    assert "container.base_image_id" not in ImageInfo("i", "sha256:a", "i@sha256:d").tags()
    assert tag_name("SVM #1 (v2)") == "svm-1-v2"
