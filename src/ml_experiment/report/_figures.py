"""Interactive plotly figures of a group (optuna.visualization where it has the plot)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ml_experiment.report._context import (
    COLORS,
    MAX_PARALLEL_PARAMS,
    MAX_SLICE_PARAMS,
    PlotContext,
    best_so_far,
    curve_trials,
    lanes,
    timeline_state,
)

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

_MARGIN = {"l": 60, "r": 30, "t": 50, "b": 50}


def _finish(fig: Figure, title: str | None, height: int = 460) -> Figure:
    """House layout; ``title`` only where it says more than the section's heading."""
    margin = {**_MARGIN, "t": 50 if title else 20}
    fig.update_layout(title=title, height=height, template="plotly_white", margin=margin)
    return fig


def _objective(i: int) -> Callable[[Any], float]:
    return lambda t: float(t.values[i])


def history(ctx: PlotContext) -> list[Figure]:
    """One history per objective, each with its best-so-far line."""
    import plotly.graph_objects as go
    from optuna.trial import TrialState
    from optuna.visualization import plot_optimization_history

    if not ctx.multi:
        fig = plot_optimization_history(ctx.study, target_name=ctx.target_name)
        return [_finish(fig, f"Optimisation history: {ctx.target_name}")]
    figs = []
    complete = [t for t in ctx.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    for i, (name, direction) in enumerate(ctx.data.objectives):
        fig = plot_optimization_history(ctx.study, target=_objective(i), target_name=name)
        fig.add_trace(
            go.Scatter(
                x=[t.number for t in complete],
                y=best_so_far([t.values[i] for t in complete], direction == "maximize"),
                mode="lines",
                name="Best so far",
                line={"color": "#d62728"},
            )
        )
        figs.append(_finish(fig, f"Optimisation history: {name} ({direction})"))
    return figs


def importances(ctx: PlotContext) -> list[Figure]:
    """Importances (Optuna's default evaluator), computed once and shared with the PNG."""
    import plotly.graph_objects as go

    if not ctx.importances:
        return []
    names = sorted(ctx.importances, key=lambda p: ctx.importances[p])
    fig = go.Figure(
        go.Bar(
            x=[ctx.importances[n] for n in names],
            y=names,
            orientation="h",
            marker_color=COLORS["complete"],
            text=[f"{ctx.importances[n]:.2f}" for n in names],
            textposition="outside",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(title=f"importance for {ctx.target_name} (PED-ANOVA)")
    fig.update_yaxes(automargin=True, ticksuffix="  ")  # keep a 0.00 label off the names
    return [_finish(fig, None, height=max(300, 60 + 32 * len(names)))]


def parallel(ctx: PlotContext) -> list[Figure]:
    from optuna.visualization import plot_parallel_coordinate

    params = ctx.top[:MAX_PARALLEL_PARAMS]
    if not params:
        return []
    fig = plot_parallel_coordinate(
        ctx.lines, params=params, target=ctx.target, target_name=ctx.target_name
    )
    return [_finish(fig, None, height=520)]


def slices(ctx: PlotContext) -> list[Figure]:
    from optuna.visualization import plot_slice

    params = ctx.top[:MAX_SLICE_PARAMS]
    if not params:
        return []
    fig = plot_slice(ctx.sample, params=params, target=ctx.target, target_name=ctx.target_name)
    fig.update_layout(width=None)
    return [_finish(fig, None, height=420)]


def contour(ctx: PlotContext) -> list[Figure]:
    from optuna.visualization import plot_contour

    if len(ctx.top) < 2:
        ctx.notes.setdefault("contour", "needs two searched parameters")
        return []
    fig = plot_contour(
        ctx.sample, params=ctx.top[:2], target=ctx.target, target_name=ctx.target_name
    )
    return [_finish(fig, None, height=560)]


def intermediate(ctx: PlotContext) -> list[Figure]:
    """Learning curves (the values reported to the pruner); pruned trials dashed and marked."""
    import plotly.graph_objects as go

    chosen = curve_trials(ctx)
    if not chosen:
        ctx.notes.setdefault("intermediate", "no trial reported intermediate values")
        return []
    fig = go.Figure()
    shown: set[str] = set()
    for t in chosen:
        state = "pruned" if t.state.name == "PRUNED" else "complete"
        steps = sorted(t.intermediate_values.items())
        fig.add_trace(
            go.Scatter(
                x=[s for s, _ in steps],
                y=[round(v, 6) for _, v in steps],
                mode="lines",
                line={
                    "color": COLORS[state],
                    "width": 1.2,
                    "dash": "dot" if state == "pruned" else "solid",
                },
                opacity=0.8,
                name=state,
                legendgroup=state,
                showlegend=state not in shown,
                hovertemplate=f"trial {t.number} ({state})<br>step %{{x}}: %{{y}}<extra></extra>",
            )
        )
        shown.add(state)
        if state == "pruned":
            last_step, last_value = steps[-1]
            fig.add_trace(
                go.Scatter(
                    x=[last_step],
                    y=[last_value],
                    mode="markers",
                    marker={"symbol": "x", "color": COLORS["pruned"], "size": 8},
                    legendgroup=state,
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
    fig.update_xaxes(title="step")
    fig.update_yaxes(title=f"{ctx.target_name} (intermediate)")
    return [_finish(fig, None)]


def timeline(ctx: PlotContext) -> list[Figure]:
    """Trials as bars on the worker (or concurrent slot) that ran them."""
    import plotly.graph_objects as go

    names, lane_of = lanes(ctx.data.trials)
    if not lane_of:
        ctx.notes.setdefault("timeline", "no trial has start and end times")
        return []
    fig = go.Figure()
    by_state: dict[str, list[Any]] = {}
    for r in ctx.data.trials:
        if r.number in lane_of:
            by_state.setdefault(timeline_state(r), []).append(r)
    labels = {"timeout": "timed out", "fail": "failed"}
    for state, rows in by_state.items():
        fig.add_trace(
            go.Bar(
                base=[round(r.start - ctx.t0, 3) for r in rows],
                x=[round(r.end - r.start, 3) for r in rows],
                y=[names[lane_of[r.number]] for r in rows],
                orientation="h",
                marker_color=COLORS[state],
                name=labels.get(state, state),
                showlegend=True,  # even alone: the colour must be explained
                customdata=[[r.number, (r.error or "")[:200].replace("<", "&lt;")] for r in rows],
                hovertemplate=(
                    "trial %{customdata[0]}<br>start %{base:.1f} s, %{x:.1f} s"
                    "<br>%{customdata[1]}<extra></extra>"
                ),
            )
        )
    fig.update_layout(barmode="overlay", bargap=0.25)
    fig.update_xaxes(title="seconds since the first trial started")
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=names[::-1])
    height = max(300, 80 + 28 * len(names))
    return [_finish(fig, None, height=min(height, 900))]


def pareto(ctx: PlotContext) -> list[Figure]:
    from optuna.visualization import plot_pareto_front

    n = len(ctx.data.objectives)
    if n < 2:
        return []
    if n > 3:
        ctx.notes.setdefault("pareto", f"drawn for 2 or 3 objectives, this group has {n}")
        return []
    fig = plot_pareto_front(ctx.sample, target_names=[m for m, _ in ctx.data.objectives])
    return [_finish(fig, None, height=560)]
