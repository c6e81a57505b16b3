"""``audit``: the reproducibility checklist (SPEC section 5) graded from a run's record.

Each item is PASS, WARN or FAIL with the evidence it read (a tag or an artifact) and, unless it
passes, what to do. FAIL: the record lacks something a re-run needs, or the run is known not to
reproduce. WARN: the record has it, but weaker than a re-run elsewhere needs. Works on any MLflow
run, also one not made by ml-experiment (it then says what is missing).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ml_experiment.reproduce._checklist import FAIL, PASS, WARN, Item, grade_all
from ml_experiment.reproduce._read import load_view
from ml_experiment.tracking.record import AUDIT_REPORT, TAG_AUDIT_RESULT, TAG_AUDIT_SCORE

__all__ = ["FAIL", "PASS", "WARN", "Audit", "Item", "audit_run"]


@dataclass
class Audit:
    """The graded checklist of one run."""

    run_id: str
    run_name: str
    experiment: str
    items: list[Item] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(i.grade == PASS for i in self.items)

    @property
    def score(self) -> str:
        return f"{self.passed}/{len(self.items)}"

    @property
    def result(self) -> str:
        """``pass`` when no item FAILs, else ``fail``."""
        return "fail" if any(i.grade == FAIL for i in self.items) else "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "experiment": self.experiment,
            "score": self.score,
            "result": self.result,
            "items": [asdict(i) for i in self.items],
        }


def audit_run(run_id: str, *, tracking_uri: str | None = None, store: bool = True) -> Audit:
    """Grade run ``run_id``'s record against the checklist; store the result on the run.

    Args:
        run_id: An MLflow run id.
        tracking_uri: The knowledge center; default as for ``ml-experiment run``.
        store: Also write the result onto the run (tags ``audit.score``, ``audit.result`` and
            the artifact ``audit/report.json``).

    Raises:
        ConfigError: no such knowledge center or run.
    """
    view = load_view(run_id, tracking_uri)
    rec = view.record
    audit = Audit(run_id=view.run_id, run_name=rec.name, experiment=rec.experiment)
    audit.items = grade_all(view)
    if store:
        store_audit(audit, view.tracking_uri)
    return audit


def store_audit(audit: Audit, tracking_uri: str) -> None:
    """The audit's only writes: two tags and the JSON report on the audited run."""
    from ml_experiment.reproduce._read import open_client

    client, _ = open_client(tracking_uri)
    client.set_tag(audit.run_id, TAG_AUDIT_SCORE, audit.score)
    client.set_tag(audit.run_id, TAG_AUDIT_RESULT, audit.result)
    client.log_text(audit.run_id, json.dumps(audit.to_dict(), indent=2), AUDIT_REPORT)
