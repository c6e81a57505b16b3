"""Reproducing a group: replay recorded trials (exact params and seeds) or re-run the search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ml_experiment.exceptions import ConfigError
from ml_experiment.reproduce._materialise import CannotReproduce
from ml_experiment.reproduce._reproduce import check_data, judge, rerun, store_verdict
from ml_experiment.reproduce._verdict import CANNOT, DIFFERS, IDENTICAL, Verdict, drift
from ml_experiment.tracking.record import RunRecord

TAG_TRIAL = "ml_experiment.trial_number"
TAG_REPLAY_OF = "ml_experiment.replay_of"
DETERMINISTIC_SAMPLERS = ("random", "qmc", "grid")


def _children(client: Any, record: RunRecord) -> dict[int, Any]:
    from ml_experiment.tracking._mlflow import child_runs

    experiment = client.get_experiment_by_name(record.experiment)
    runs = child_runs(client, experiment.experiment_id, str(record.run_id))
    return {int(r.data.tags[TAG_TRIAL]): r for r in runs if TAG_TRIAL in r.data.tags}


def _select(trials: str, record: RunRecord, children: dict[int, Any]) -> list[int]:
    complete = sorted(n for n, r in children.items() if r.info.status == "FINISHED")
    if trials == "best":
        best = record.tags.get("best_trial_number")
        if best is None:
            raise CannotReproduce(f"group run {record.run_id} recorded no best trial")
        return [int(best)]
    if trials == "all":
        if not complete:
            raise CannotReproduce(f"group run {record.run_id} has no complete trial")
        return complete
    try:
        numbers = sorted({int(t) for t in trials.split(",") if t.strip()})
    except ValueError:
        raise ConfigError(
            f"--trials must be best, all or trial numbers such as 3,7; got {trials!r}",
            field="trials",
        ) from None
    unknown = [n for n in numbers if n not in complete]
    if unknown or not numbers:
        raise ConfigError(
            f"--trials {trials}: no complete trial {unknown or trials} in group run "
            f"{record.run_id} (complete: {', '.join(map(str, complete)) or 'none'})",
            field="trials",
        )
    return numbers


def _study(record: RunRecord, name_tag: str = "ml_experiment.study") -> Any:
    import optuna

    from ml_experiment.hpo import open_storage, storage_kind

    path = record.tags.get("ml_experiment.study_storage")
    name = record.tags.get(name_tag)
    journal = bool(path) and storage_kind(str(path)) == "journal"
    if not path or not name or (journal and not Path(path).exists()):
        raise CannotReproduce(f"the study of group run {record.run_id} is not here ({path})")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=open_storage(path))


def reproduce_group(
    record: RunRecord, uri: str, *, rtol: float, atol: float, trials: str, search: bool
) -> list[Verdict]:
    """Replay the selected trials in one new group (or, with ``search``, the search itself)."""
    from ml_experiment.reproduce._read import open_client

    config = record.config or {}
    if search and (
        config.get("seed") is None or config.get("sampler") not in DETERMINISTIC_SAMPLERS
    ):
        raise ConfigError(
            f"--search needs a seeded group with a deterministic sampler "
            f"({', '.join(DETERMINISTIC_SAMPLERS)}); run {record.run_id} has sampler "
            f"{config.get('sampler')!r} and seed {config.get('seed')!r}",
            field="search",
        )
    check_data(record)
    client, _ = open_client(uri)
    children = _children(client, record)
    study = _study(record)
    replay: list[dict[str, Any]] = []
    if not search:
        numbers = _select(trials, record, children)
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        for n in numbers:
            seed = children[n].data.tags.get("seed")
            params = by_number[n].params if n in by_number else None
            if params is None:
                raise CannotReproduce(f"trial {n} is not in the group's study")
            replay.append({"params": params, "seed": int(seed) if seed else None, "of": n})
    changes: dict[str, Any] = {"report": False}
    if not search:
        changes.update(num_trials=len(replay), replay=replay, pruner="none")
    again, output = rerun(record, uri, client, changes)
    if search:
        verdict = _same_proposals(record, again, study)
        store_verdict(client, verdict)
        return [verdict]
    return _replayed(client, uri, record, again, replay, rtol, atol, output)


def _replayed(
    client: Any,
    uri: str,
    record: RunRecord,
    rerun: RunRecord,
    replay: list[dict[str, Any]],
    rtol: float,
    atol: float,
    output: str,
) -> list[Verdict]:
    found = drift(record, rerun)
    new = {
        int(r.data.tags[TAG_REPLAY_OF]): r.info.run_id
        for r in client.search_runs(
            [client.get_experiment_by_name(record.experiment).experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{rerun.run_id}'",
            max_results=1000,
        )
        if TAG_REPLAY_OF in r.data.tags
    }
    children = _children(client, record)
    verdicts = []
    for item in replay:
        n = item["of"]
        original = RunRecord.load(children[n].info.run_id, tracking_uri=uri)
        if n not in new:
            v = Verdict(str(original.run_id), None, CANNOT, reason="the replayed trial is missing")
        else:
            v = judge(original, RunRecord.load(new[n], tracking_uri=uri), rtol, atol, output)
            v.drift = found
            store_verdict(client, v)
        v.trial = n
        verdicts.append(v)
    worst = next((v.verdict for v in verdicts if not v.ok), verdicts[0].verdict)
    summary = Verdict(str(record.run_id), rerun.run_id, worst, drift=found)
    summary.reason = f"{sum(v.ok for v in verdicts)}/{len(verdicts)} trials reproduced"
    store_verdict(client, summary)
    return verdicts


def _same_proposals(record: RunRecord, rerun: RunRecord, study: Any) -> Verdict:
    """Whether the re-run search proposed the same parameters, trial by trial."""
    before = {t.number: t.params for t in study.get_trials(deepcopy=False)}
    after = {t.number: t.params for t in _study(rerun).get_trials(deepcopy=False)}
    verdict = Verdict(str(record.run_id), rerun.run_id, IDENTICAL, drift=drift(record, rerun))
    differing = [n for n in sorted(before) if before[n] != after.get(n)]
    if differing:
        n = differing[0]
        verdict.verdict = DIFFERS
        verdict.reason = (
            f"{len(differing)} of {len(before)} proposals differ; trial {n}: "
            f"{json.dumps(before[n], default=str)} then, {json.dumps(after.get(n), default=str)} now"
        )
    else:
        verdict.reason = f"the search proposed the same parameters for all {len(before)} trials"
    verdict.compared = len(before)
    return verdict
