"""Readers of the run record: reproduce, verify, audit and diff recorded runs."""

from __future__ import annotations

from ml_experiment.reproduce._audit import Audit, audit_run
from ml_experiment.reproduce._diff import Diff, diff_runs
from ml_experiment.reproduce._materialise import CannotReproduce, materialise
from ml_experiment.reproduce._verdict import Verdict
from ml_experiment.reproduce._verify import reproduce

__all__: list[str] = [
    "Audit",
    "CannotReproduce",
    "Diff",
    "Verdict",
    "audit_run",
    "diff_runs",
    "materialise",
    "reproduce",
]
