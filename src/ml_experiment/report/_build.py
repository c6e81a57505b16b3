"""``build_report``: a group's (or an experiment's) offline HTML page and PNG plots."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ml_experiment.report._figures as _figures
import ml_experiment.report._images as _images
from ml_experiment._format import format_duration
from ml_experiment._gc import held
from ml_experiment.report._html import (
    DEFAULT_UI_BASE,
    Section,
    cards,
    esc,
    failures_html,
    json_script,
    kv_table,
    page,
    run_link,
    section_html,
    trials_table,
    when,
)
from ml_experiment.report._load import (
    ExperimentData,
    GroupData,
    is_group,
    load_experiment,
    load_group,
    open_client,
    resolve_run,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from ml_experiment.report._context import PlotContext

log = logging.getLogger(__name__)

ARTIFACT_DIR = "report"
# (key, title, plotly builder, matplotlib builder), in page order.
_GROUP_PLOTS: list[tuple[str, str, Callable[..., Any], Callable[..., Any]]] = [
    ("history", "Optimisation history", _figures.history, _images.history),
    ("importances", "Parameter importances", _figures.importances, _images.importances),
    ("parallel", "Parallel coordinates", _figures.parallel, _images.parallel),
    ("slice", "Slice plots: each parameter against the objective", _figures.slices, _images.slices),
    ("contour", "Contour of the two most important parameters", _figures.contour, _images.contour),
    (
        "intermediate",
        "Intermediate values (learning curves; pruned trials dotted, x where stopped)",
        _figures.intermediate,
        _images.intermediate,
    ),
    ("timeline", "Timeline of trials per worker", _figures.timeline, _images.timeline),
    ("pareto", "Pareto front", _figures.pareto, _images.pareto),
]
_ENV_PREFIXES = ("env.", "hw.", "git.", "mlflow.source.")


def _use_agg() -> None:
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # never switch a backend someone already uses
        matplotlib.use("Agg")


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """No "A new study created in memory" lines for the report's working copies."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _group_sections(ctx: PlotContext, out: Path) -> tuple[list[Section], list[str]]:
    import matplotlib
    from optuna.trial import TrialState

    sections, pngs = [], []
    complete = any(t.state == TrialState.COMPLETE for t in ctx.study.get_trials(deepcopy=False))
    for key, title, plotly_fn, mpl_fn in _GROUP_PLOTS:
        if key == "pareto" and not ctx.multi:
            continue
        try:
            # Optuna draws empty axes (and warns) for a plot of objective values without any.
            figures = plotly_fn(ctx) if complete or key not in _NEEDS_COMPLETE else []
        except Exception as exc:  # one plot that cannot be drawn must not cost the others
            log.warning("report: %s not drawn: %s", key, _one_line(exc))
            ctx.notes[key] = f"could not be drawn: {_one_line(exc)}"
            figures = []
        png = None
        if figures:
            try:
                with matplotlib.rc_context():  # optuna's matplotlib plots set a global style
                    saved = _images.save(mpl_fn(ctx), out / f"{key}.png", relayout=key != "slice")
                if saved is not None:
                    png = f"{key}.png"
                    pngs.append(png)
            except Exception as exc:
                log.warning("report: %s.png not drawn: %s", key, _one_line(exc))
        note = " ".join(
            n
            for n in (ctx.notes.get(key), ctx.notes.get("sample") if key in _SAMPLED else None)
            if n
        )
        if not figures and not note:
            note = "nothing to draw: no finished trial has what this plot needs"
        sections.append(Section(key, title, figures, note or None, png))
    return sections, pngs


_NEEDS_COMPLETE = {"history", "parallel", "slice", "contour", "pareto"}
_SAMPLED = {"slice", "contour", "pareto"}  # the parallel plot notes its own sample


def _group_header(data: GroupData, ui_base: str) -> str:
    p = data.parent
    link = run_link(ui_base, data.experiment_id, p.info.run_id)
    # MLflow 3's UI opens an experiment on its GenAI overview; this is the list of runs.
    runs = f"{ui_base.rstrip('/')}/#/experiments/{data.experiment_id}/runs"
    return (
        f"<h1>Group {esc(data.name)}</h1>"
        f"<div>parent run <a href='{esc(link)}'>{esc(p.info.run_id)}</a> "
        f"(<a href='{esc(runs)}'>all runs</a>) &middot; "
        f"status {esc(p.info.status)} &middot; started {esc(when(p.info.start_time / 1000))}"
        f" &middot; trials from the {esc(data.study_source)}</div>"
    )


def _best_summary(ctx: PlotContext) -> list[tuple[str, Any]]:
    from optuna.trial import TrialState

    complete = [t for t in ctx.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return [("best trial", "none complete")]
    if ctx.multi:
        return [("Pareto-optimal trials", len(ctx.study.best_trials))]
    best = ctx.study.best_trial
    number = best.user_attrs.get("number", best.number)
    return [("best trial", f"#{number}"), (f"best {ctx.target_name}", best.value)]


def _group_page(data: GroupData, out: Path, ui_base: str) -> tuple[str, list[str]]:
    from ml_experiment.report._context import make_context

    ctx = make_context(data)
    sections, pngs = _group_sections(ctx, out)
    counts = {s: sum(r.state == s for r in data.trials) for s in ("complete", "pruned", "fail")}
    wall = [r.end for r in data.trials if r.end] or [ctx.t0]
    summary = [
        ("trials", len(data.trials)),
        ("complete", counts["complete"]),
        ("pruned", counts["pruned"]),
        ("failed", counts["fail"]),
        *_best_summary(ctx),
        ("objective", ", ".join(f"{n} ({d})" for n, d in data.objectives)),
        ("trials' wall time", format_duration(max(wall) - ctx.t0) if ctx.t0 else ""),
    ]
    nav = " ".join(f"<a href='#{s.key}'>{esc(s.title)}</a>" for s in sections)
    body = [
        cards(summary),
        f"<nav><p>{nav} <a href='#trials-section'>All trials</a></p></nav>",
        *(section_html(s) for s in sections),
        failures_html(data.trials),
        trials_table(data, ui_base),
        json_script(
            "report-facts",
            {
                "kind": "group",
                "parent_run_id": data.parent.info.run_id,
                "trials": len(data.trials),
                "counts": counts,
                "plots": [f"plot-{s.key}-{i}" for s in sections for i in range(len(s.figures))],
                "pngs": pngs,
            },
        ),
    ]
    return page(f"Group {data.name}", _group_header(data, ui_base), body), pngs


def _experiment_page(data: ExperimentData, out: Path, ui_base: str) -> tuple[str, list[str]]:
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    run = data.run
    curves = {k: v for k, v in data.histories.items() if len(v) > 1}
    sections: list[Section] = []
    pngs: list[str] = []
    for i, (key, points) in enumerate(sorted(curves.items())):
        xs, ys = [s for s, _ in points], [v for _, v in points]
        fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines+markers", name=key))
        fig.update_layout(
            height=340,
            template="plotly_white",
            margin={"l": 60, "r": 30, "t": 20, "b": 50},
            xaxis_title="step",
            yaxis_title=key,
        )
        mfig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(xs, ys, marker="o", markersize=3)
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.set_title(key)
        name = f"metric-{i:02d}.png"
        _images.save(mfig, out / name)
        pngs.append(name)
        sections.append(Section(f"metric-{i:02d}", f"Metric: {key}", [fig], None, name))
    tags = run.data.tags
    env = sorted((k, v) for k, v in tags.items() if k.startswith(_ENV_PREFIXES))
    link = run_link(ui_base, data.experiment_id, run.info.run_id)
    header = (
        f"<h1>Experiment {esc(data.name)}</h1><div>run <a href='{esc(link)}'>"
        f"{esc(run.info.run_id)}</a> &middot; status {esc(run.info.status)} &middot; "
        f"started {esc(when(run.info.start_time / 1000))}</div>"
    )
    duration = (run.info.end_time - run.info.start_time) / 1000 if run.info.end_time else None
    body = [
        cards([("status", run.info.status), ("duration", format_duration(duration) or "")]),
        *(section_html(s) for s in sections),
        "<section id='metrics'><h2>Final metrics</h2>"
        + kv_table(sorted(run.data.metrics.items()), "metrics-table")
        + "</section>",
        "<section id='params'><h2>Parameters</h2>"
        + kv_table(sorted(run.data.params.items()), "params-table")
        + "</section>",
        "<section id='environment'><h2>Environment</h2>"
        + (kv_table(env, "env-table") if env else "<p class='note'>not recorded</p>")
        + (f"<p class='err'>{esc(tags['error'])}</p>" if "error" in tags else "")
        + "</section>",
        json_script(
            "report-facts",
            {
                "kind": "experiment",
                "run_id": run.info.run_id,
                "plots": [f"plot-{s.key}-0" for s in sections],
                "pngs": pngs,
            },
        ),
    ]
    return page(f"Experiment {data.name}", header, body), pngs


@held()  # no user code, and the plots' imports and figures make little garbage
def build_report(
    run_id_or_group_name: str,
    *,
    tracking_uri: str | None = None,
    out_dir: str | Path | None = None,
    ui_base: str = DEFAULT_UI_BASE,
    log_to_run: bool = False,
    client: MlflowClient | None = None,
) -> Path:
    """Write the report of a group (or an experiment) and return the path of its ``index.html``.

    Args:
        run_id_or_group_name: a run id (a group's parent run, or any run), or a group's name
            (its latest parent run).
        tracking_uri: the knowledge center; None uses the default (``MLFLOW_TRACKING_URI`` or
            ./mlruns.db).
        out_dir: folder for ``index.html`` and the PNGs; default ``./reports/<name>``.
        ui_base: the MLflow UI address the trial links point to.
        log_to_run: also log the files to the run as artifacts under ``report/``.
        client: an MlflowClient to reuse (the group driver's own).

    Raises:
        ConfigError: no run or group has that id or name.
    """
    started = time.perf_counter()
    uri = tracking_uri or ""
    if client is None:
        client, uri = open_client(tracking_uri)
    run = resolve_run(client, run_id_or_group_name, uri)
    _use_agg()
    with _quiet_optuna():
        data: GroupData | ExperimentData
        if is_group(run):
            data = load_group(client, run)
            default = data.name
        else:
            data = load_experiment(client, run)
            default = f"{data.name}-{run.info.run_id[:8]}"
        out = Path(out_dir) if out_dir is not None else Path("reports") / _safe(default)
        out.mkdir(parents=True, exist_ok=True)
        if isinstance(data, GroupData):
            text, pngs = _group_page(data, out, ui_base)
        else:
            text, pngs = _experiment_page(data, out, ui_base)
    index = out / "index.html"
    tmp = out / ".index.html.part"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(index)  # a reader never sees half a page
    if log_to_run:
        for name in ["index.html", *pngs]:
            client.log_artifact(run.info.run_id, str(out / name), ARTIFACT_DIR)
    log.info("report %s written in %.1f s", index, time.perf_counter() - started)
    return index


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "report"
