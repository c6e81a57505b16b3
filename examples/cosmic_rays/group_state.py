"""Where a group of the study stands, for ``run_study.sh``: ``finished``, ``unfinished`` or ``absent``.

``python examples/cosmic_rays/group_state.py cosmic-svm-thesis`` reads the group's parent runs
in the knowledge center (``MLFLOW_TRACKING_URI`` or ./mlruns.db): a FINISHED one means the
search is done (the study skips it), any other one that it was stopped and continues with
``--resume``, none that it has not started.
"""

from __future__ import annotations

import os
import sys


def state(group: str, tracking_uri: str) -> str:
    """The group's state (see the module docstring)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(group)
    if exp is None:
        return "absent"
    parents = [
        r
        for r in client.search_runs([exp.experiment_id], max_results=5000)
        if "mlflow.parentRunId" not in r.data.tags
        and r.data.tags.get("ml_experiment.kind") == "group"
    ]
    if any(r.info.status == "FINISHED" for r in parents):
        return "finished"
    return "unfinished" if parents else "absent"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: group_state.py GROUP_NAME")
    print(state(sys.argv[1], os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlruns.db"))
