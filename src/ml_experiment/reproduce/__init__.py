"""Readers of the run record: reproduce, verify, audit and diff recorded runs."""

from __future__ import annotations

from ml_experiment.reproduce._audit import Audit, audit_run
from ml_experiment.reproduce._diff import Diff, diff_runs

__all__: list[str] = ["Audit", "Diff", "audit_run", "diff_runs"]
