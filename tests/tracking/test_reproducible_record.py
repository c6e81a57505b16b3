"""The parts of the run record a re-run needs: snapshot, numerics, data files, determinism."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
from tests.conftest import write

from ml_experiment.tracking import _snapshot
from ml_experiment.tracking._capture import hash_data_files, run_tags
from ml_experiment.tracking._numerics import numerics_info, numerics_tags


def test_snapshot_takes_python_files_and_the_job_file_within_its_bound(
    tmp_path, monkeypatch, capsys
):
    src = tmp_path / "proj"
    write(src / "train.py", "import lib\n")
    write(src / "lib" / "__init__.py", "X = 1\n")
    write(src / "lib" / "big.py", "# " + "x" * 400 + "\n")
    write(src / ".venv" / "pyvenv.cfg", "")
    write(src / ".venv" / "site.py", "never\n")
    write(src / "data.bin", "not code\n")
    job = write(tmp_path / "jobs" / "job.yaml", "name: a\n")
    monkeypatch.setattr(_snapshot, "MAX_BYTES", 100)
    files, left_out = _snapshot.snapshot(src / "train.py", job)
    assert set(files) == {"train.py", "_job/job.yaml", "lib/__init__.py"}
    assert files["train.py"] == b"import lib\n"
    big = (src / "lib" / "big.py").read_bytes()
    assert left_out == {
        "lib/big.py": {"bytes": len(big), "sha256": hashlib.sha256(big).hexdigest()}
    }
    err = capsys.readouterr().err
    assert "leaves out 1 file(s) over its bound" in err and "lib/big.py" in err


def test_numerics_names_the_variables_and_libraries(monkeypatch):
    import numpy  # noqa: F401  (loads its BLAS)

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", "/not/numerics")
    info = numerics_info({"gpu_count": "0", "cpu_model": "x"})
    assert info["env"]["OMP_NUM_THREADS"] == "3"
    assert "TF_CLI_CONFIG_FILE" not in info["env"]
    assert info["gpu"] == {"gpu_count": "0"}
    assert any(p.get("user_api") == "blas" for p in info["threadpools"])
    if sys.platform.startswith("linux"):
        assert info["cpu_flags"]  # every Linux CPU lists its flags
    tags = numerics_tags(info)
    assert tags["env.OMP_NUM_THREADS"] == "3" and "threads)" in tags["threadpools"]


def test_data_files_are_hashed_with_size_and_time(tmp_path):
    f = write(tmp_path / "d.csv", "1,2\n")
    folder = tmp_path / "images"
    write(folder / "a.png", "a")
    out = hash_data_files([str(f), str(folder)])
    assert out[str(f)]["sha256"] == hashlib.sha256(b"1,2\n").hexdigest()
    assert out[str(f)]["bytes"] == 4 and out[str(folder)]["bytes"] == 1
    assert out[str(f)]["seconds"] >= 0


def test_run_tags_from_the_environment(monkeypatch):
    monkeypatch.setenv("ML_EXPERIMENT_RUN_TAGS", '{"reproduction.of": "abc"}')
    assert run_tags() == {"reproduction.of": "abc"}
    monkeypatch.setenv("ML_EXPERIMENT_RUN_TAGS", "[not an object")
    assert run_tags() == {}


def test_a_missing_data_file_is_bad_input(tmp_path):
    from ml_experiment.config import load_config
    from ml_experiment.exceptions import ConfigError

    write(tmp_path / "t.py", "x = 1\n")
    job = write(tmp_path / "j.yaml", "name: a\nrun: [t.py]\ndata_files: [missing.csv]\n")
    with pytest.raises(
        ConfigError, match=r"data_files\[0\]: no such file or folder: 'missing.csv'"
    ):
        load_config(str(job))


def test_determinism_switches_are_applied_and_named(monkeypatch):
    from ml_experiment.execution._determinism import apply_determinism, determinism_tags

    for key in ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "TF_DETERMINISTIC_OPS"):
        monkeypatch.delenv(key, raising=False)
    import torch

    try:
        applied = apply_determinism()
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert "torch.use_deterministic_algorithms(True)" in applied
    assert applied[0].startswith("PYTHONHASHSEED=0")
    tags = determinism_tags(True, applied)
    assert tags["ml_experiment.deterministic"] == "true"
    assert "CUBLAS_WORKSPACE_CONFIG=:4096:8" in tags["ml_experiment.deterministic.applied"]
    assert determinism_tags(False, []) == {"ml_experiment.deterministic": "false"}


def test_snapshot_skips_the_knowledge_center(tmp_path):
    src = tmp_path / "p"
    write(src / "t.py", "x = 1\n")
    write(src / "mlartifacts" / "1" / "m.py", "never\n")
    write(src / "store" / "k.py", "never\n")
    files, _ = _snapshot.snapshot(src / "t.py", None, (Path(src / "store"),))
    assert set(files) == {"t.py"}
