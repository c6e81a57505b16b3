"""Every malformed job file exits 2 with one line naming the field; nothing runs, nothing is written."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.config.test_loader import BAD, CASES
from tests.conftest import run_cli, write

SENTINEL = Path("/tmp/ml-experiment-pwned")


@pytest.mark.slow
def test_corpus_through_the_cli(tmp_path: Path) -> None:
    SENTINEL.unlink(missing_ok=True)
    assert len(CASES) >= 25

    def one(case: tuple[str, str, str]):
        name, _, _ = case
        return case, run_cli("run", str(BAD / name), cwd=tmp_path, timeout=120)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, CASES))
    for (name, what, expected), res in results:
        err = res.stderr.strip()
        assert res.returncode == 2, (name, res.returncode, err)
        assert "\n" not in err, (name, err)
        assert "Traceback" not in err, name
        assert err.startswith("error: "), (name, err)
        if name not in ("empty.yaml",):
            assert name in err, (name, err)  # the file is named
        assert expected in err, (name, what, expected, err)
    # No run, no knowledge center, no code executed.
    assert not (tmp_path / "mlruns.db").exists()
    assert not (tmp_path / "mlartifacts").exists()
    assert not SENTINEL.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--sampler", "skopt"], "use 'gp'"),
        (["--num_trials", "-3"], "num_trials"),
        (["--params", "[1, 2]"], "--params"),
        (["--metric_direction", "sideways"], "metric.direction"),
        (["--ray_config", "{num_cpus: 0}"], "ray_config.num_cpus"),
        # A typo Ray itself would refuse only once the store, study and parent run exist.
        (["--ray_config", "{num_cpu: 2}"], "ray_config.num_cpu: 'num_cpu' is not an argument"),
        (["--kind", "grup"], "Unknown kind 'grup'"),
    ],
)
def test_bad_flags(tmp_path: Path, args: list[str], expected: str) -> None:
    write(
        tmp_path / "t.py",
        "from ml_experiment import job\n@job\ndef main(C=1):\n    return {'a': C}\n",
    )
    write(
        tmp_path / "g.yaml",
        "name: g\nkind: group\nparam_space: {C: 'uniform(0, 1)'}\nmetric: {name: a}\nrun: [t.py]\n",
    )
    res = run_cli("run", "g.yaml", *args, cwd=tmp_path, timeout=120)
    assert res.returncode == 2, res.stderr
    assert expected in res.stderr and res.stderr.strip().count("\n") == 0
    assert not (tmp_path / "mlruns.db").exists()


@pytest.mark.slow
def test_code_in_a_flag_is_only_data(tmp_path: Path) -> None:
    SENTINEL.unlink(missing_ok=True)
    write(
        tmp_path / "t.py",
        "from ml_experiment import job\n@job\ndef main(C=1):\n    return {'a': 1}\n",
    )
    write(tmp_path / "e.yaml", "name: e\nrun: [t.py]\n")
    payload = f"__import__('os').system('touch {SENTINEL}')"
    res = run_cli("run", "e.yaml", "--params", f'{{"C": "{payload}"}}', cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    from tests.conftest import all_runs, client

    (run,) = all_runs(client(tmp_path), "e")
    assert run.data.params["C"] == payload
    assert not SENTINEL.exists()


def test_full_error_shows_traceback(tmp_path: Path) -> None:
    res = run_cli(
        "run", str(BAD / "sampler_typo.yaml"), cwd=tmp_path, env={"ML_EXPERIMENT_FULL_ERROR": "1"}
    )
    assert res.returncode == 2 and "Traceback" in res.stderr


def test_import_loads_no_heavy_module() -> None:
    """``import ml_experiment`` and its public names stay light.

    Its time is measured in benchmarks/ (``run_benchmarks.py --only import``), not here.
    """
    import subprocess

    code = (
        "import ml_experiment; "
        "from ml_experiment import job, DataLoader, Trial, AutologgingBackend; "
        "import ml_experiment.integrations, ml_experiment.callbacks.notifiers; import sys; "
        "print([m for m in ('mlflow', 'optuna', 'ray', 'torch', 'tensorflow', 'xgboost') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["foo"], "No such command 'foo'"),
        (["rn"], "Did you mean 'run'?"),
        (["run", "--nope"], "No such option: --nope"),
        (["run", "--nam", "x"], "--name"),
        (["run", "g.yaml", "--num_trials", "abc"], "Invalid value for '--num_trials'"),
        (["ui", "--port", "http"], "Invalid value for '--port'"),
    ],
)
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    res = run_cli(*args, cwd=tmp_path, timeout=120)
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip()
    assert "Traceback" not in err and "\n" not in err, err
    assert err.startswith("error: ") and expected in err, err
    assert list(tmp_path.iterdir()) == []


TYPED = """
from ml_experiment import job

@job
def main(n: int = 1, lr: float = 0.1, kernel: str = "rbf"):
    return {"a": n * lr}

if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize(
    ("job_file", "args", "expected"),
    [
        ("name: e\nparams: {n: three}\nrun: [t.py]\n", [], "e.yaml: params.n: expected int"),
        ("name: e\nrun: [t.py]\n", ["--params", '{"lr": "fast"}'], "params.lr: expected float"),
        (
            "name: g\nkind: group\nparams: {n: three}\nparam_space: {lr: 'uniform(0, 1)'}\n"
            "metric: a\nnum_trials: 1\nrun: [t.py]\n",
            [],
            "e.yaml: params.n: expected int, got 'three'",
        ),
    ],
)
def test_param_contradicting_the_annotation_runs_nothing(
    tmp_path: Path, job_file: str, args: list[str], expected: str
) -> None:
    write(tmp_path / "t.py", TYPED)
    write(tmp_path / "e.yaml", job_file)
    res = run_cli("run", "e.yaml", *args, cwd=tmp_path, timeout=120)
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and expected in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.yaml", "t.py"]


@pytest.mark.slow
def test_coercions_a_user_expects_still_run(tmp_path: Path) -> None:
    write(tmp_path / "t.py", TYPED)
    write(tmp_path / "e.yaml", "name: e\nparams: {n: 2, lr: 1}\nrun: [t.py]\n")
    res = run_cli("run", "e.yaml", "--params", '{"lr": "1e-3"}', cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    from tests.conftest import all_runs, client

    (run,) = all_runs(client(tmp_path), "e")
    assert run.data.metrics["a"] == pytest.approx(2e-3)


def test_huge_job_file_is_refused_fast(tmp_path: Path) -> None:
    import time

    write(tmp_path / "t.py", TYPED)
    with (tmp_path / "big.yaml").open("w") as f:
        f.write("name: big\nrun: [t.py]\nparams:\n")
        for i in range(19_000):  # about 19 MB
            f.write(f"  p{i}: {'x' * 1000}\n")
    started = time.perf_counter()
    res = run_cli("run", "big.yaml", cwd=tmp_path, timeout=120)
    elapsed = time.perf_counter() - started
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().startswith("error: big.yaml: is 19.")
    assert "\n" not in res.stderr.strip()
    assert elapsed < 20, elapsed  # 130 s before (mostly the process start now)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml", "t.py"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("run_not_python.yaml", "run[0]: is not a Python script (.py), got 'expectations.json'"),
        ("name_too_long.yaml", "name: is 300 bytes long, at most 200"),
        ("name_with_slash.yaml", "name: must not contain '/'"),
        ("alias_bomb.yaml", "alias bomb"),
        ("alias_recursive.yaml", "refers to the mapping or list that contains it"),
    ],
)
def test_hostile_job_files_through_the_cli(tmp_path: Path, name: str, expected: str) -> None:
    """A sample of the corpus in the fast lane (the whole corpus runs in the slow one)."""
    res = run_cli("run", str(BAD / name), cwd=tmp_path, timeout=60)
    err = res.stderr.strip()
    assert res.returncode == 2, err
    assert err.startswith(f"error: {BAD / name}: ") and "\n" not in err, err
    assert expected in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_cluster_address_nothing_answers_at_is_one_line_at_once(tmp_path: Path) -> None:
    """``ray.init`` would wait for it without end; the group says so before a study or a run."""
    from tests.services import free_port

    write(tmp_path / "t.py", TYPED)
    address = f"127.0.0.1:{free_port()}"
    write(
        tmp_path / "g.yaml",
        "name: g\nkind: group\nparam_space: {lr: 'uniform(0, 1)'}\nmetric: a\nnum_trials: 1\n"
        f"ray_config: {{address: '{address}'}}\nrun: [t.py]\n",
    )
    res = run_cli("run", "g.yaml", cwd=tmp_path, timeout=60)
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert f"g.yaml: ray_config.address: nothing answers at {address}" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.yaml", "t.py"]
