"""Comparing a re-run with the run it reproduces: metrics (final and per step), and what drifted."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ml_experiment.tracking.record import RunRecord

IDENTICAL = "identical"
WITHIN = "within tolerance"
DIFFERS = "differs"
CANNOT = "cannot reproduce"
_OURS = {"duration_s"}  # timing the framework adds: never part of the verdict


@dataclass
class MetricDelta:
    name: str
    step: int | None  # None: the final value
    original: float | None
    rerun: float | None

    @property
    def delta(self) -> float | None:
        if self.original is None or self.rerun is None:
            return None
        return self.rerun - self.original


@dataclass
class Verdict:
    """The outcome of one reproduction."""

    run_id: str
    rerun_id: str | None
    verdict: str
    reason: str | None = None
    differences: list[MetricDelta] = field(default_factory=list)
    compared: int = 0  # metric values compared (final + steps)
    drift: dict[str, list[str]] = field(default_factory=dict)
    trial: int | None = None  # the trial number, for a group's trial

    @property
    def ok(self) -> bool:
        return self.verdict in (IDENTICAL, WITHIN)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["differences"] = [{**asdict(d), "delta": d.delta} for d in self.differences]
        return data


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def compare_metrics(
    original: RunRecord, rerun: RunRecord, rtol: float, atol: float
) -> tuple[str, list[MetricDelta], int]:
    """``identical``, ``within tolerance`` or ``differs``, with every metric that is not equal."""
    pairs: list[tuple[str, int | None, float | None, float | None]] = []
    names = sorted((set(original.metrics) | set(rerun.metrics)) - _OURS)
    for name in names:
        pairs.append((name, None, original.metrics.get(name), rerun.metrics.get(name)))
    steps_a = {(s, k): v for s, m in original.steps for k, v in m.items() if k not in _OURS}
    steps_b = {(s, k): v for s, m in rerun.steps for k, v in m.items() if k not in _OURS}
    for at, name in sorted(set(steps_a) | set(steps_b)):
        pairs.append((name, at, steps_a.get((at, name)), steps_b.get((at, name))))
    verdict = IDENTICAL
    deltas: list[MetricDelta] = []
    for name, step, a, b in pairs:
        if a is not None and b is not None and _same(a, b):
            continue
        deltas.append(MetricDelta(name, step, a, b))
        close = a is not None and b is not None and abs(b - a) <= atol + rtol * abs(a)
        verdict = WITHIN if close and verdict != DIFFERS else DIFFERS
    return verdict, deltas, len(pairs)


def drift(original: RunRecord, rerun: RunRecord) -> dict[str, list[str]]:
    """What differs between the two runs' environments, section by section (empty: nothing)."""
    from ml_experiment.reproduce._read import packages

    a, b = packages(original.requirements), packages(rerun.requirements)
    changes = [
        f"{n}: {a[n][0]} -> {b[n][0]}" for n in sorted(set(a) & set(b)) if a[n][0] != b[n][0]
    ]
    changes += [f"{n}: removed (was {a[n][0]})" for n in sorted(set(a) - set(b))]
    changes += [f"{n}: added ({b[n][0]})" for n in sorted(set(b) - set(a))]
    sections = {
        "packages": changes,
        "python": _changed(original.environment, rerun.environment, ("python_version", "os")),
        "hardware": _changed(original.hardware, rerun.hardware, None),
        "threads and variables": _changed(
            _flat_numerics(original.numerics), _flat_numerics(rerun.numerics), None
        ),
    }
    if original.numerics.get("cpu_flags") != rerun.numerics.get("cpu_flags"):
        flags_a = set(str(original.numerics.get("cpu_flags", "")).split())
        flags_b = set(str(rerun.numerics.get("cpu_flags", "")).split())
        sections["hardware"].append(
            f"cpu flags: -{' -'.join(sorted(flags_a - flags_b)) or ''} "
            f"+{' +'.join(sorted(flags_b - flags_a)) or ''}".strip()
        )
    return {k: v for k, v in sections.items() if v}


def _flat_numerics(numerics: dict[str, Any]) -> dict[str, str]:
    flat = {f"env {k}": str(v) for k, v in numerics.get("env", {}).items()}
    for pool in numerics.get("threadpools", []):
        name = pool.get("internal_api") or pool.get("user_api") or "?"
        flat[f"{name} threads"] = str(pool.get("num_threads"))
        flat[f"{name} version"] = str(pool.get("version"))
    flat.update({f"gpu {k}": str(v) for k, v in numerics.get("gpu", {}).items()})
    return flat


def _changed(a: dict[str, Any], b: dict[str, Any], keys: tuple[str, ...] | None) -> list[str]:
    names = keys if keys is not None else tuple(sorted(set(a) | set(b)))
    return [f"{k}: {a.get(k, '-')} -> {b.get(k, '-')}" for k in names if a.get(k) != b.get(k)]


def render(v: Verdict) -> list[str]:
    """The verdict as console lines."""
    head = f"{v.verdict}" + (f": {v.reason}" if v.reason else "")
    where = f"trial {v.trial}: " if v.trial is not None else ""
    lines = [f"{where}{head}  (run {v.run_id}" + (f" -> {v.rerun_id})" if v.rerun_id else ")")]
    if v.rerun_id and v.verdict != CANNOT:
        lines.append(f"  {v.compared} metric values compared")
    for d in v.differences[:20]:
        at = f" (step {d.step})" if d.step is not None else ""
        delta = f"  delta {d.delta:+.6g}" if d.delta is not None else ""
        lines.append(f"  {d.name}{at}: {d.original} -> {d.rerun}{delta}")
    if len(v.differences) > 20:
        lines.append(f"  ... and {len(v.differences) - 20} more")
    if v.drift:
        lines.append("  environment drift:")
        for section, items in v.drift.items():
            lines += [f"    {section}: {item}" for item in items[:15]]
            if len(items) > 15:
                lines.append(f"    {section}: ... and {len(items) - 15} more")
    elif v.rerun_id:
        lines.append("  environment drift: none")
    return lines
