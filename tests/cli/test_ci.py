"""CI runs exactly the README's test command, plus the lint, format and type checks."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_test_command_and_the_checks() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    (command,) = [b for b in blocks if "pytest" in b]
    # everything (no marker deselected), on two workers
    assert command.endswith("python -m pytest -q -n 2")
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert command in ci
    for check in ("ruff check src tests", "ruff format --check src tests", "mypy"):
        assert check in ci
    assert 'python -m pytest -m "not slow" -q' in readme
