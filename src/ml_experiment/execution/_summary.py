"""The few lines a person reads when a run or a group ends: what happened, and where to look."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

MAX_FAILURES = 5  # failed trials listed by name; the rest are counted


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in params.items())


def _look_further(run_id: str | None) -> str:
    return f"look further: ml-experiment ui  |  ml-experiment report {run_id}"


def experiment_summary(
    name: str, run_id: str | None, status: str, metrics: Mapping[str, float], duration: float
) -> str:
    lines = [f"run {run_id} of {name!r}: {status} in {duration:.1f} s"]
    shown = {k: v for k, v in metrics.items() if k != "duration_s"}
    lines += [f"  {k} = {_value(v)}" for k, v in shown.items()]
    lines.append(_look_further(run_id))
    return "\n".join(lines)


def group_summary(
    *,
    name: str,
    study: str,
    run_id: str | None,
    counts: Mapping[str, int],
    best: list[dict[str, Any]],
    failures: list[tuple[int, str]],
    duration: float,
    report: str | None,
) -> str:
    total = sum(counts.values())
    where = repr(name) if study == name else f"{name!r} (study {study!r})"
    lines = [
        f"group {where}: {total} trials, {counts.get('complete', 0)} complete, "
        f"{counts.get('pruned', 0)} pruned, {counts.get('fail', 0)} failed in {duration:.1f} s"
    ]
    if len(best) == 1:
        b = best[0]
        values = ", ".join(f"{k} = {_value(v)}" for k, v in b["values"].items())
        lines.append(f"best trial {b['number']}: {values}")
        lines.append(f"  {_params(b['params'])}")
    elif best:
        lines.append(f"Pareto front: {len(best)} trials")
        for b in best[:MAX_FAILURES]:
            values = ", ".join(f"{k} = {_value(v)}" for k, v in b["values"].items())
            lines.append(f"  trial {b['number']}: {values}  ({_params(b['params'])})")
        if len(best) > MAX_FAILURES:
            lines.append(f"  ... and {len(best) - MAX_FAILURES} more")
    if failures:
        lines.append("failed trials:")
        for number, reason in sorted(failures)[:MAX_FAILURES]:
            first = reason.strip().splitlines()[0] if reason.strip() else "failed"
            lines.append(f"  trial {number}: {first[:200]}")
        if len(failures) > MAX_FAILURES:
            lines.append(f"  ... and {len(failures) - MAX_FAILURES} more")
    lines.append(f"parent run {run_id}")
    if report:
        lines.append(f"report: {report}")
    lines.append(_look_further(run_id))
    return "\n".join(lines)


def show(text: str) -> None:
    """The summary goes to stdout, after everything else the command printed."""
    sys.stderr.flush()
    print(text, flush=True)
