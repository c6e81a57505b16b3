"""The self-contained HTML page: plotly's JavaScript inline once, no request leaves the file."""

from __future__ import annotations

import datetime as _dt
import html
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml_experiment.report._rebuild import flat_value

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from ml_experiment.report._load import GroupData, TrialRow

DEFAULT_UI_BASE = "http://127.0.0.1:5000"
MAX_FAILURE_KINDS = 10

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3b57;color:#fff;padding:18px 28px}
header h1{margin:0 0 6px 0;font-size:24px} header a{color:#cfe3ff}
main{padding:16px 28px;max-width:1500px}
nav a{margin-right:14px} section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;
padding:12px 18px;margin:14px 0}
h2{font-size:18px;margin:4px 0 8px 0} .note{color:#666;font-size:13px;margin:2px 0 6px 0}
.cards{display:flex;flex-wrap:wrap;gap:12px} .card{background:#fff;border:1px solid #e3e3e3;
border-radius:6px;padding:8px 14px;min-width:120px} .card b{display:block;font-size:20px}
table{border-collapse:collapse;font-size:13px} th,td{border-bottom:1px solid #eee;
padding:3px 8px;text-align:left;vertical-align:top;white-space:nowrap} th{background:#f3f5f8;position:sticky;top:0;
cursor:pointer;user-select:none} .scroll{max-height:640px;overflow:auto}
td.num{text-align:right;font-variant-numeric:tabular-nums} .state-complete{color:#1f77b4}
.state-pruned{color:#c75f00} .state-fail{color:#d62728;font-weight:600}
.state-running,.state-waiting{color:#7f7f7f} .err{min-width:240px;max-width:420px;white-space:normal;color:#8a1c1c} code{font-size:12px}
input#filter{margin:4px 0 8px 0;padding:4px 8px;width:320px}
"""

# Sorting and filtering of the trial table; inline like everything else.
_JS = """
function mlxSort(th){const t=th.closest('table'),b=t.tBodies[0],i=[...th.parentNode.children]
.indexOf(th),asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';const rows=[...b.rows];
rows.sort((x,y)=>{const a=x.cells[i].dataset.v??x.cells[i].textContent,c=y.cells[i].dataset.v
??y.cells[i].textContent,na=parseFloat(a),nc=parseFloat(c);const r=(!isNaN(na)&&!isNaN(nc))?
na-nc:a.localeCompare(c);return asc?r:-r});rows.forEach(r=>b.appendChild(r))}
function mlxFilter(inp){const q=inp.value.toLowerCase();for(const r of document.querySelectorAll(
'#trials tbody tr')){r.style.display=r.textContent.toLowerCase().includes(q)?'':'none'}}
"""


@dataclass
class Section:
    """One titled block of the page: figures, a note, and PNG file names beside the page."""

    key: str
    title: str
    figures: Sequence[Figure]
    note: str | None = None
    png: str | None = None


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return _dt.datetime.fromtimestamp(epoch, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_link(ui_base: str, exp_id: str, run_id: str) -> str:
    return f"{ui_base.rstrip('/')}/#/experiments/{exp_id}/runs/{run_id}"


def figure_div(fig: Figure, div_id: str) -> str:
    div = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )
    return f'<div class="plot" data-report-plot="{esc(div_id)}">{div}</div>'


def section_html(sec: Section) -> str:
    parts = [f'<section id="{esc(sec.key)}"><h2>{esc(sec.title)}</h2>']
    if sec.note:
        parts.append(f'<p class="note">{esc(sec.note)}</p>')
    for i, fig in enumerate(sec.figures):
        parts.append(figure_div(fig, f"plot-{sec.key}-{i}"))
    if sec.png:
        parts.append(f'<p class="note">Image: <a href="{esc(sec.png)}">{esc(sec.png)}</a></p>')
    parts.append("</section>")
    return "".join(parts)


def page(title: str, header: str, body: Iterable[str]) -> str:
    """The whole document; plotly.js inline in <head>, once."""
    from plotly.offline import get_plotlyjs

    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title>"
        # Forbid every fetch: the page must work from a file, offline, and leak nothing.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        'img-src data: blob:; font-src data:">'
        f"<style>{_CSS}</style><script>{get_plotlyjs()}</script><script>{_JS}</script>"
        f"</head><body><header>{header}</header><main>{''.join(body)}</main></body></html>"
    )


def cards(items: Iterable[tuple[str, Any]]) -> str:
    inner = "".join(f'<div class="card">{esc(k)}<b>{esc(fmt(v))}</b></div>' for k, v in items)
    return f'<div class="cards">{inner}</div>'


def kv_table(rows: Iterable[tuple[str, Any]], table_id: str) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(fmt(v))}</td></tr>" for k, v in rows)
    return f'<table id="{esc(table_id)}"><tbody>{body}</tbody></table>'


def failures_html(rows: Sequence[TrialRow]) -> str:
    """Failed trials grouped by their one-line reason, most frequent first."""
    reasons = Counter(
        (r.error or "no reason recorded").splitlines()[0][:300] for r in rows if r.state == "fail"
    )
    if not reasons:
        return ""
    items = "".join(
        f"<tr><td class='num'>{n}</td><td class='err'>{esc(reason)}</td></tr>"
        for reason, n in reasons.most_common(MAX_FAILURE_KINDS)
    )
    more = len(reasons) - MAX_FAILURE_KINDS
    tail = f'<p class="note">and {more} other reasons (see the table)</p>' if more > 0 else ""
    total = sum(reasons.values())
    return (
        f'<section id="failures"><h2>Failures ({total})</h2>'
        f"<table><thead><tr><th>trials</th><th>reason</th></tr></thead><tbody>{items}"
        f"</tbody></table>{tail}</section>"
    )


def _param_cell(value: Any) -> str:
    """Numbers (logged as text) shown to 6 significant digits, sorted by their full value."""
    text = value if isinstance(value, str) else fmt(value)
    try:
        number = float(text)
    except ValueError:
        return f"<td>{esc(text)}</td>"
    return f"<td class='num' data-v='{number!r}' title='{esc(text)}'>{esc(fmt(number))}</td>"


def trials_table(data: GroupData, ui_base: str) -> str:
    """Every trial: number, state, params, metrics, duration, failure reason, MLflow link."""
    params = list(data.searched)
    if not params:
        params = sorted({k for r in data.trials for k in r.params})
    objective_names = [n for n, _ in data.objectives]
    others = sorted(
        {k for r in data.trials for k in r.metrics} - set(objective_names) - {"duration_s"}
    )
    metrics = [m for m in objective_names if any(m in r.metrics for r in data.trials)] + others
    head = ["#", "state", *params, *metrics, "duration (s)", "started", "failure reason", "run"]
    th = "".join(f'<th onclick="mlxSort(this)">{esc(h)}</th>' for h in head)
    out = []
    for r in data.trials:
        cells = [f"<td class='num'>{r.number}</td>", f"<td class='state-{r.state}'>{r.state}</td>"]
        for p in params:
            value = flat_value(r.params, p)
            cells.append(_param_cell("" if value is None else value))
        for m in metrics:
            v = r.metrics.get(m)
            cells.append(
                f"<td class='num' data-v='{'' if v is None else v}'>"
                f"{'' if v is None else esc(fmt(v))}</td>"
            )
        d = r.duration
        cells.append(f"<td class='num'>{'' if d is None else f'{d:.1f}'}</td>")
        cells.append(f"<td>{esc(when(r.start))}</td>")
        first = (r.error or "").splitlines()[0][:300] if r.error else ""
        cells.append(f"<td class='err' title='{esc((r.error or '')[:2000])}'>{esc(first)}</td>")
        link = (
            f"<a href='{esc(run_link(ui_base, data.experiment_id, r.run_id))}'>MLflow</a>"
            if r.run_id
            else ""
        )
        cells.append(f"<td>{link}</td>")
        out.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<section id="trials-section"><h2>All trials ({len(data.trials):,})</h2>'
        '<input id="filter" placeholder="filter rows (e.g. fail, pruned, a value)" '
        'oninput="mlxFilter(this)">'
        f'<div class="scroll"><table id="trials"><thead><tr>{th}</tr></thead>'
        f"<tbody>{''.join(out)}</tbody></table></div></section>"
    )


def json_script(name: str, value: Any) -> str:
    """Machine-readable facts for tests and tools (``<script type=application/json>``)."""
    text = json.dumps(value, default=str).replace("</", "<\\/")
    return f'<script type="application/json" id="{esc(name)}">{text}</script>'
