"""Loading a script's @job function the way a Ray worker does."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import write

from ml_experiment.execution import load_job_function


def test_the_scripts_own_job_wins_over_an_imported_one(tmp_path: Path, monkeypatch) -> None:
    write(
        tmp_path / "helper.py",
        "from ml_experiment import job\n@job\ndef main(a=0.0):\n    return {}\n",
    )
    script = write(
        tmp_path / "script.py",
        "from helper import main as _other\nfrom ml_experiment import job\n"
        "@job\ndef main(b=0.0):\n    return {'y': b}\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = load_job_function(script, "main")
    assert "b" in fn.signature.parameters
