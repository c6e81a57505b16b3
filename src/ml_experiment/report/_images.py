"""PNG images of a group's plots (matplotlib: no browser needed; optuna's twin where it fits)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from pathlib import Path
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
    from matplotlib.figure import Figure

DPI = 100


def _figure_of(axes: Any) -> Figure:
    import numpy as np

    first = np.ravel(np.asarray(axes, dtype=object))[0]
    figure: Figure = first.figure
    return figure


def _optuna_plot(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Figure:
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        # optuna.visualization.matplotlib is marked experimental since 2.2; it works.
        warnings.simplefilter("ignore", ExperimentalWarning)
        return _figure_of(fn(*args, **kwargs))


def history(ctx: PlotContext) -> Figure | None:
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization.matplotlib import plot_optimization_history

    if not ctx.multi:
        fig = _optuna_plot(plot_optimization_history, ctx.study, target_name=ctx.target_name)
        fig.set_size_inches(9, 5)
        return fig
    complete = [t for t in ctx.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    n = len(ctx.data.objectives)
    fig, axes = plt.subplots(n, 1, figsize=(9, 3.2 * n), squeeze=False)
    for i, (name, direction) in enumerate(ctx.data.objectives):
        ax = axes[i][0]
        x = [t.number for t in complete]
        y = [t.values[i] for t in complete]
        ax.scatter(x, y, s=10, color=COLORS["complete"], label=name)
        ax.plot(x, best_so_far(y, direction == "maximize"), color="#d62728", label="best so far")
        ax.set_ylabel(f"{name} ({direction})")
        ax.legend(loc="best")
    axes[-1][0].set_xlabel("trial")
    fig.suptitle("Optimisation history")
    return fig


def importances(ctx: PlotContext) -> Figure | None:
    import matplotlib.pyplot as plt

    if not ctx.importances:
        return None
    names = sorted(ctx.importances, key=lambda p: ctx.importances[p])
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.5 + 0.4 * len(names))))
    values = [ctx.importances[n] for n in names]
    ax.barh(names, values, color=COLORS["complete"])
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f}", va="center")
    ax.set_xlabel(f"importance for {ctx.target_name} (PED-ANOVA)")
    ax.set_title("Parameter importances")
    return fig


def parallel(ctx: PlotContext) -> Figure | None:
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    params = ctx.top[:MAX_PARALLEL_PARAMS]
    if not params:
        return None
    fig = _optuna_plot(
        plot_parallel_coordinate,
        ctx.lines,
        params=params,
        target=ctx.target,
        target_name=ctx.target_name,
    )
    fig.set_size_inches(max(9, 1.8 * (len(params) + 1)), 5.5)
    return fig


def slices(ctx: PlotContext) -> Figure | None:
    from optuna.visualization.matplotlib import plot_slice

    params = ctx.top[:MAX_SLICE_PARAMS]
    if not params:
        return None
    fig = _optuna_plot(
        plot_slice, ctx.sample, params=params, target=ctx.target, target_name=ctx.target_name
    )
    fig.set_size_inches(max(6, 3.2 * len(params)), 4)
    return fig


def contour(ctx: PlotContext) -> Figure | None:
    from optuna.visualization.matplotlib import plot_contour

    if len(ctx.top) < 2:
        return None
    fig = _optuna_plot(
        plot_contour,
        ctx.sample,
        params=ctx.top[:2],
        target=ctx.target,
        target_name=ctx.target_name,
    )
    fig.set_size_inches(8, 6)
    return fig


def intermediate(ctx: PlotContext) -> Figure | None:
    import matplotlib.pyplot as plt

    chosen = curve_trials(ctx)
    if not chosen:
        return None
    fig, ax = plt.subplots(figsize=(9, 5))
    labelled: set[str] = set()
    for t in chosen:
        state = "pruned" if t.state.name == "PRUNED" else "complete"
        steps = sorted(t.intermediate_values.items())
        xs, ys = [s for s, _ in steps], [v for _, v in steps]
        ax.plot(
            xs,
            ys,
            color=COLORS[state],
            linestyle=":" if state == "pruned" else "-",
            linewidth=1,
            alpha=0.8,
            label=state if state not in labelled else None,
        )
        labelled.add(state)
        if state == "pruned":
            ax.plot(xs[-1:], ys[-1:], "x", color=COLORS[state], markersize=6)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{ctx.target_name} (intermediate)")
    ax.set_title("Intermediate values (learning curves)")
    ax.legend(loc="best")
    return fig


def timeline(ctx: PlotContext) -> Figure | None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    names, lane_of = lanes(ctx.data.trials)
    if not lane_of:
        return None
    fig, ax = plt.subplots(figsize=(10, min(12, max(2.5, 0.9 + 0.35 * len(names)))))
    # One collection per lane and state: a bar call per trial costs ~5 ms (10 s at 2,000).
    spans: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for r in ctx.data.trials:
        if r.number in lane_of and r.start is not None and r.end is not None:
            key = (lane_of[r.number], timeline_state(r))
            spans.setdefault(key, []).append((r.start - ctx.t0, r.end - r.start))
    for (lane, state), xranges in spans.items():
        ax.broken_barh(
            xranges,
            (lane - 0.35, 0.7),
            facecolors=COLORS[state],
            edgecolors="white",
            linewidth=0.3,
        )
    seen = {state for _, state in spans}
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("seconds since the first trial started")
    ax.set_title("Timeline of trials per worker")
    labels = {"timeout": "timed out", "fail": "failed"}
    handles = [Patch(color=COLORS[s], label=labels.get(s, s)) for s in COLORS if s in seen]
    # Below the axes: inside, the legend would hide the last trials of the first lanes.
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(handles))
    return fig


def pareto(ctx: PlotContext) -> Figure | None:
    from optuna.visualization.matplotlib import plot_pareto_front

    if len(ctx.data.objectives) not in (2, 3):
        return None
    fig = _optuna_plot(
        plot_pareto_front, ctx.sample, target_names=[m for m, _ in ctx.data.objectives]
    )
    fig.set_size_inches(8, 6)
    return fig


def save(fig: Figure | None, path: Path, *, relayout: bool = True) -> Path | None:
    """Write ``fig`` as a PNG, cropped to what is drawn, and free it; None: nothing to draw.

    ``relayout=False`` for optuna's slice plot: tight_layout moves its axes but not its colour
    bar, which then covers the last subplot.
    """
    import matplotlib.pyplot as plt

    if fig is None:
        return None
    if relayout:
        with warnings.catch_warnings():
            # Colour bars make tight_layout warn that it may be approximate; it still helps.
            warnings.simplefilter("ignore", UserWarning)
            with contextlib.suppress(ValueError, RuntimeError):  # crowded: keep the layout
                fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)
    return path
