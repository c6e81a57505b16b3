"""What every plot of a group report shares: the study, a bounded sample of it, importances."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ml_experiment.report._load import GroupData, TrialRow
from ml_experiment.report._rebuild import MAX_CURVES

if TYPE_CHECKING:
    import optuna

# Above this many finished trials the per-point plots (parallel coordinates, slices, contour)
# draw a sample: the best quarter and an even spread of the rest. Keeps a 2,000-trial report
# well under 10 MB and the browser responsive.
MAX_POINTS = 1000
# Optuna draws parallel coordinates as one plotly trace per trial: above a few hundred lines
# the plot is unreadable and slow to build, so it gets a smaller sample of its own.
MAX_LINES = 300
MAX_SLICE_PARAMS = 8
MAX_PARALLEL_PARAMS = 12

COLORS = {
    "complete": "#1f77b4",
    "pruned": "#ff7f0e",
    "fail": "#d62728",
    "timeout": "#7b1fa2",
    "running": "#7f7f7f",
}


@dataclass
class PlotContext:
    """The inputs of every plot, computed once."""

    data: GroupData
    sample: optuna.Study
    lines: optuna.Study  # the sample for parallel coordinates (at most MAX_LINES trials)
    target: Callable[[Any], float] | None
    target_name: str
    importances: dict[str, float]
    top: list[str]  # searched parameters, most important first
    notes: dict[str, str] = field(default_factory=dict)
    t0: float = 0.0  # start of the first trial (timeline origin)

    @property
    def study(self) -> optuna.Study:
        return self.data.study

    @property
    def multi(self) -> bool:
        return len(self.data.objectives) > 1

    def finished(self) -> list[Any]:
        from optuna.trial import TrialState

        return [
            t
            for t in self.study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        ]


def _first_value(t: Any) -> float:
    return float(t.values[0])


def _negated_first_value(t: Any) -> float:
    return -float(t.values[0])


def _spread(items: list[Any], n: int) -> list[Any]:
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def best_and_spread(trials: list[Any], n: int, maximize: bool) -> list[Any]:
    """At most ``n`` trials: the best quarter by first objective and an even spread of the rest."""
    if len(trials) <= n:
        return list(trials)
    scored = sorted((t for t in trials if t.values), key=_first_value, reverse=maximize)
    best = scored[: n // 4]
    chosen = {t.number for t in best}
    rest = [t for t in trials if t.number not in chosen]
    return sorted([*best, *_spread(rest, n - len(best))], key=lambda t: t.number)


def _sub_study(study: optuna.Study, trials: list[Any]) -> optuna.Study:
    import optuna

    sub = optuna.create_study(directions=study.directions)
    sub.add_trials(trials)
    return sub


def _importances(ctx: PlotContext) -> dict[str, float]:
    import optuna
    from optuna.trial import TrialState

    complete = [t for t in ctx.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if len(complete) < 2 or not ctx.data.searched:
        return {}
    maximize = ctx.data.objectives[0][1] == "maximize"
    varied = [
        p
        for p in ctx.data.searched
        if len({repr(t.params.get(p)) for t in complete if p in t.params}) > 1
    ]
    if len(varied) < 2:
        # Normalised importances of one parameter are 1; Optuna's evaluators would cost ~1.5 s
        # of importing scikit-learn (optuna.importance loads fANOVA's) to say so.
        return dict.fromkeys(varied, 1.0)
    target = ctx.target
    if target is not None and maximize:
        # Optuna's evaluator ranks parameters by how they lower the target.
        target = _negated_first_value
    try:
        with warnings.catch_warnings():  # its reminder that lower is better: handled above
            warnings.simplefilter("ignore", UserWarning)
            # All trials: Optuna 5's default evaluator (PED-ANOVA) takes ~0.1 s at 2,000.
            found = optuna.importance.get_param_importances(ctx.study, params=varied, target=target)
    except (ValueError, RuntimeError) as exc:
        ctx.notes["importances"] = f"not computed: {exc}"
        return {}
    return {k: float(v) for k, v in found.items() if math.isfinite(v)}


def make_context(data: GroupData) -> PlotContext:
    """Sample, target and importances for ``data``."""
    multi = len(data.objectives) > 1
    ctx = PlotContext(
        data=data,
        sample=data.study,
        lines=data.study,
        target=_first_value if multi else None,
        target_name=data.objectives[0][0],
        importances={},
        top=list(data.searched),
    )
    finished = ctx.finished()
    maximize = data.objectives[0][1] == "maximize"
    chosen = best_and_spread(finished, MAX_POINTS, maximize)
    if len(chosen) < len(finished):
        ctx.sample = _sub_study(data.study, chosen)
        ctx.notes["sample"] = (
            f"{len(chosen):,} of {len(finished):,} finished trials drawn "
            "(the best quarter and an even spread of the rest)"
        )
    few = best_and_spread(finished, MAX_LINES, maximize)
    if len(few) < len(finished):
        ctx.lines = _sub_study(data.study, few)
        ctx.notes["parallel"] = (
            f"{len(few):,} of {len(finished):,} finished trials drawn "
            "(the best quarter and an even spread of the rest)"
        )
    ctx.importances = _importances(ctx)
    if ctx.importances:
        ranked = sorted(ctx.importances, key=lambda p: -ctx.importances[p])
        ctx.top = ranked + [p for p in data.searched if p not in ctx.importances]
    starts = [r.start for r in data.trials if r.start is not None]
    ctx.t0 = min(starts) if starts else 0.0
    return ctx


def curve_trials(ctx: PlotContext) -> list[Any]:
    """Trials with learning curves to draw: at most MAX_CURVES, the best always among them."""
    with_curves = [t for t in ctx.finished() if len(t.intermediate_values) > 0]
    maximize = ctx.data.objectives[0][1] == "maximize"
    chosen = best_and_spread(with_curves, MAX_CURVES, maximize)
    if len(chosen) < len(with_curves):
        ctx.notes["intermediate"] = (
            f"{len(chosen)} of {len(with_curves):,} learning curves drawn "
            "(the best quarter and an even spread of the rest)"
        )
    return chosen


def best_so_far(values: list[float], maximize: bool) -> list[float]:
    out: list[float] = []
    for v in values:
        out.append(v if not out else (max(out[-1], v) if maximize else min(out[-1], v)))
    return out


def timeline_state(row: TrialRow) -> str:
    if row.state == "fail" and row.error and row.error.startswith("timed out"):
        return "timeout"
    return row.state if row.state in COLORS else "running"


def lanes(rows: list[TrialRow]) -> tuple[list[str], dict[int, int]]:
    """Lane names and each trial's lane: its worker tag, else the first free concurrent slot."""
    timed = sorted(
        (r for r in rows if r.start is not None and r.end is not None),
        key=lambda r: (r.start, r.number),
    )
    if any(r.worker for r in timed):
        workers = sorted({r.worker or "unknown" for r in timed})
        index = {w: i for i, w in enumerate(workers)}
        # A bare number is the worker's process id; say so (and keep the axis categorical).
        names = [f"pid {w}" if w.isdigit() else w for w in workers]
        return names, {r.number: index[r.worker or "unknown"] for r in timed}
    ends: list[float] = []
    lane_of: dict[int, int] = {}
    for r in timed:
        assert r.start is not None and r.end is not None
        for i, end in enumerate(ends):
            if end <= r.start + 1e-3:
                ends[i] = r.end
                lane_of[r.number] = i
                break
        else:
            ends.append(r.end)
            lane_of[r.number] = len(ends) - 1
    return [f"slot {i + 1}" for i in range(len(ends))], lane_of
