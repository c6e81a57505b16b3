"""``reproduce``: which re-run a recorded run needs (an experiment's, or a group's trials)."""

from __future__ import annotations

from ml_experiment.exceptions import ConfigError
from ml_experiment.reproduce._group import reproduce_group
from ml_experiment.reproduce._reproduce import load_original, reproduce_experiment
from ml_experiment.reproduce._verdict import Verdict
from ml_experiment.tracking.record import TAG_KIND


def reproduce(
    run_id: str,
    *,
    tracking_uri: str | None = None,
    rtol: float = 0.0,
    atol: float = 0.0,
    trials: str = "best",
    search: bool = False,
) -> list[Verdict]:
    """Re-run ``run_id`` from its record and compare; one verdict (per trial for a group).

    Raises:
        ConfigError: bad input (unknown run id, options that do not fit the run).
        CannotReproduce: the record or this machine is not enough to re-run it (nothing written).
    """
    if rtol < 0 or atol < 0:
        raise ConfigError(f"--rtol and --atol must be >= 0, got {rtol} and {atol}", field="rtol")
    record, uri = load_original(run_id, tracking_uri)
    if record.tags.get(TAG_KIND) == "group":
        return reproduce_group(record, uri, rtol=rtol, atol=atol, trials=trials, search=search)
    if search or trials != "best":
        raise ConfigError(
            f"--trials and --search apply to a group's parent run; {run_id} is a single run",
            field="trials",
        )
    if record.parent_run_id:
        raise ConfigError(
            f"run {run_id} is a trial of group run {record.parent_run_id}: reproduce it with "
            f"`ml-experiment reproduce {record.parent_run_id} --trials N`",
            field="run_id",
        )
    return [reproduce_experiment(record, uri, rtol=rtol, atol=atol)]
