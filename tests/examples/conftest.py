"""Helpers for the example tests."""

from __future__ import annotations

from pathlib import Path

import yaml


def without_report(job: Path, folder: Path) -> list[str]:
    """``job`` copied into ``folder`` with ``report: false``, then its scripts by path (for
    ``ml-experiment run``).

    The example tests look at the models, not at the report: it has its own tests (tests/report)
    and one that cannot be made fails no run. It cost 5-30 s per group on 2 cores.
    """
    copy = folder / job.name
    copy.write_text(job.read_text() + "\nreport: false\n")
    return [str(copy), *(str(job.parent / s) for s in yaml.safe_load(copy.read_text())["run"])]
