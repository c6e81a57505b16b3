"""Every malformed job file exits 2 with one line naming the field; nothing runs, nothing is written."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.config.test_loader import BAD, CASES
from tests.conftest import run_cli, write

SENTINEL = Path("/tmp/ml-experiment-pwned")


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


def test_import_is_light_and_fast() -> None:
    import subprocess

    code = (
        "import time; t = time.perf_counter(); import ml_experiment; "
        "from ml_experiment import job, DataLoader, Trial, AutologgingBackend; "
        "import ml_experiment.integrations, ml_experiment.callbacks.notifiers; "
        "dt = time.perf_counter() - t; import sys; "
        "heavy = [m for m in ('mlflow', 'optuna', 'ray', 'torch', 'tensorflow', 'xgboost') "
        "if m in sys.modules]; print(dt, heavy)"
    )
    best = None
    for _ in range(3):  # the best of three: a cold disk cache is not the package's cost
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        dt, heavy = out.stdout.split(" ", 1)
        assert heavy.strip() == "[]", heavy
        best = min(best or 99.0, float(dt))
    assert best < 0.3, best
