"""A torn study journal (power cut after an unsynced append), through the installed command."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import run_cli, write

SCRIPT = """
from ml_experiment import job

@job
def main(x: float = 0.5):
    return {"score": x}
"""


def _group(folder: Path, name: str, trials: int) -> Path:
    return write(
        folder / f"{name}.yaml",
        f"""
        name: {name}
        kind: group
        report: false
        num_trials: {trials}
        seed: 1
        param_space:
          x: uniform(0, 1)
        metric: {{name: score, direction: maximize}}
        resources_per_worker: {{cpu: 1}}
        ray_config: {{num_cpus: 1}}
        run:
          - s.py
        """,
    )


@pytest.mark.slow
def test_resume_after_a_torn_journal_and_later_groups_work(tmp_path: Path) -> None:
    folder = tmp_path / "kc"
    write(folder / "s.py", SCRIPT)
    job = _group(folder, "torn", 3)
    assert run_cli("run", str(job), cwd=folder).returncode == 0
    journal = folder / "optuna-studies.journal"
    data = journal.read_bytes()
    journal.write_bytes(data[:-100])  # the disk kept only part of the last append

    res = run_cli("run", str(job), "--resume", cwd=folder)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr and "JSONDecodeError" not in res.stderr
    assert "torn record" in res.stderr
    assert list(folder.glob("optuna-studies.journal.torn-*"))
    assert all(line.startswith(b'{"op_code":') for line in journal.read_bytes().splitlines())

    # Before the repair, every later group in this folder failed on the glued line.
    res = run_cli("run", str(_group(folder, "later", 1)), cwd=folder)
    assert res.returncode == 0, res.stderr[-3000:]
