"""A group's study rebuilt from its MLflow child runs, for when the journal is out of reach."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from ml_experiment.report._load import TrialRow

MAX_CURVES = 100  # learning curves drawn; more trials are sampled (the best always kept)


def _number(text: Any) -> float | None:
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text)
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def flat_value(params: dict[str, Any], name: str) -> Any:
    """A searched value from logged params; ``layers.1`` reads item 1 of the list ``layers``."""
    if name in params:
        return params[name]
    base, _, index = name.rpartition(".")
    if base in params and index.isdigit():
        try:
            items = json.loads(params[base])
            return json.dumps(items[int(index)])
        except (ValueError, TypeError, IndexError):
            return None
    return None


def _infer_distribution(seen: list[Any]) -> Any:
    """The distribution a column of logged values came from, as far as the values tell."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if not seen:
        return None
    nums = [_number(v) for v in seen]
    if any(x is None for x in nums):
        return CategoricalDistribution(sorted({str(s) for s in seen}))
    values = [float(x) for x in nums if x is not None]
    lo, hi = min(values), max(values)
    ints = all(x.is_integer() and "." not in str(s) for x, s in zip(values, seen, strict=True))
    if lo == hi:
        return CategoricalDistribution([int(lo) if ints else lo])
    if ints:
        return IntDistribution(int(lo), int(hi))
    return FloatDistribution(lo, hi, log=lo > 0 and hi / lo > 100)


def _internal_value(dist: Any, value: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return str(value) if isinstance(dist.choices[0], str) else dist.choices[0]
    num = _number(value)
    return int(num) if isinstance(dist, IntDistribution) and num is not None else num


def rebuild_study(
    rows: list[TrialRow],
    objectives: list[tuple[str, str]],
    searched: list[str],
    histories: dict[int, dict[int, float]],
) -> optuna.Study:
    """An in-memory study equivalent to the child runs (distributions from the values seen)."""
    import optuna
    from optuna.trial import TrialState

    raw = {r.number: {n: flat_value(r.params, n) for n in searched} for r in rows}
    dists: dict[str, Any] = {}
    for name in searched:
        dist = _infer_distribution([v[name] for v in raw.values() if v.get(name) is not None])
        if dist is not None:
            dists[name] = dist
    states = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}
    directions: list[Any] = [d for _, d in objectives]
    study = optuna.create_study(directions=directions)
    trials = []
    for r in rows:
        params: dict[str, Any] = {}
        for name, dist in dists.items():
            v = raw[r.number].get(name)
            if v is not None:
                params[name] = _internal_value(dist, v)
        state = states.get(r.state, TrialState.FAIL)
        found = [r.metrics.get(n) for n, _ in objectives]
        values = [v for v in found if v is not None and math.isfinite(v)]
        if len(values) < len(found):
            state = TrialState.FAIL if state == TrialState.COMPLETE else state
        trials.append(
            optuna.trial.create_trial(
                state=state,
                params=params,
                distributions={k: dists[k] for k in params},
                values=values if state == TrialState.COMPLETE else None,
                intermediate_values=histories.get(r.number, {}),
                user_attrs={"number": r.number},
            )
        )
    study.add_trials(trials)
    return study


def curve_sample(rows: list[TrialRow], key: str, maximize: bool) -> list[TrialRow]:
    """At most MAX_CURVES trials: the best ones, then an even spread of the others."""
    with_runs = [r for r in rows if r.run_id and r.state in ("complete", "pruned")]
    if len(with_runs) <= MAX_CURVES:
        return with_runs
    scored = sorted(
        (r for r in with_runs if key in r.metrics),
        key=lambda r: r.metrics[key],
        reverse=maximize,
    )
    keep = {r.number: r for r in scored[: MAX_CURVES // 4]}
    rest = [r for r in with_runs if r.number not in keep]
    step = len(rest) / (MAX_CURVES - len(keep))
    for i in range(MAX_CURVES - len(keep)):
        r = rest[int(i * step)]
        keep[r.number] = r
    return sorted(keep.values(), key=lambda r: r.number)
