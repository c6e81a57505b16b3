"""``diff``: two recorded runs side by side, section by section, and the diff of their code."""

from __future__ import annotations

import difflib
import hashlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_experiment.reproduce._read import RunView, load_view, packages, read_artifact
from ml_experiment.tracking.record import (
    SNAPSHOT_DIR,
    TAG_AUDIT_RESULT,
    TAG_AUDIT_SCORE,
    TAG_DETERMINISTIC,
    TAG_DETERMINISTIC_APPLIED,
    TAG_SNAPSHOT,
    TEXT_FILES,
)

__all__ = ["Diff", "Row", "diff_runs", "print_diff"]

SECTIONS = (
    "run",
    "params",
    "metrics",
    "tags",
    "code",
    "data",
    "environment",
    "packages",
    "hardware",
    "determinism",
)
# Shown in their own section, or (audit) this tool's own results rather than the run's.
_MOVED_TAGS = {
    TAG_SNAPSHOT,
    TAG_DETERMINISTIC,
    TAG_DETERMINISTIC_APPLIED,
    TAG_AUDIT_SCORE,
    TAG_AUDIT_RESULT,
    "mlflow.runName",
}
_CODE_DIFF_LIMIT = 200_000  # characters of code diff kept (a diff of whole repositories is noise)


@dataclass
class Row:
    """One compared value: ``None`` where a run does not have it."""

    section: str
    key: str
    a: str | None
    b: str | None

    @property
    def same(self) -> bool:
        return self.a == self.b


@dataclass
class Diff:
    """Two runs compared."""

    run_a: str
    run_b: str
    name_a: str
    name_b: str
    rows: list[Row] = field(default_factory=list)
    code_diff: str = ""

    def shown(self, show_all: bool = False) -> list[Row]:
        return [r for r in self.rows if show_all or not r.same]

    def to_dict(self, show_all: bool = False) -> dict[str, Any]:
        sections: dict[str, list[dict[str, str | None]]] = {}
        for r in self.shown(show_all):
            sections.setdefault(r.section, []).append({"key": r.key, "a": r.a, "b": r.b})
        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "differ": any(not r.same for r in self.rows) or bool(self.code_diff),
            "sections": sections,
            "code_diff": self.code_diff,
        }


def diff_runs(run_a: str, run_b: str, *, tracking_uri: str | None = None) -> Diff:
    """Compare runs ``run_a`` and ``run_b`` of one knowledge center.

    Raises:
        ConfigError: no such knowledge center, or either run is not in it.
    """
    a, b = load_view(run_a, tracking_uri), load_view(run_b, tracking_uri)
    diff = Diff(run_a=a.run_id, run_b=b.run_id, name_a=a.record.name, name_b=b.record.name)
    va, vb = _values(a), _values(b)
    for section in SECTIONS:
        keys = sorted(set(va[section]) | set(vb[section]))
        diff.rows += [Row(section, k, va[section].get(k), vb[section].get(k)) for k in keys]
    for row in diff.rows:
        if row.key == "cpu_flags" and not row.same:
            fa, fb = set((row.a or "").split()), set((row.b or "").split())
            if row.a and row.b:  # only the flags that differ
                row.a, row.b = " ".join(sorted(fa - fb)) or "-", " ".join(sorted(fb - fa)) or "-"
            else:
                row.a, row.b = (f"{len(f)} flags" if f else None for f in (fa, fb))
    diff.code_diff = _code_diff(a, b)
    return diff


def _str(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _values(v: RunView) -> dict[str, dict[str, str]]:
    """Every compared value of one run, by section."""
    rec = v.record
    out: dict[str, dict[str, str]] = {s: {} for s in SECTIONS}
    out["run"] = {"experiment": rec.experiment, "name": rec.name, "status": rec.status}
    out["params"] = {k: str(x) for k, x in rec.params.items()}
    out["metrics"] = {k: _str(x) for k, x in rec.metrics.items()}
    out["tags"] = {k: x for k, x in rec.tags.items() if k not in _MOVED_TAGS}
    code = {k: x for k, x in rec.code.items() if k != "patch"}
    if rec.code.get("patch") is not None:
        patch = rec.code["patch"].encode()
        code["patch"] = f"{len(patch)} bytes, sha256 {hashlib.sha256(patch).hexdigest()[:12]}"
    if TAG_SNAPSHOT in rec.tags:
        code["snapshot"] = rec.tags[TAG_SNAPSHOT]
    out["code"] = code
    out["data"] = {f"fingerprint.{k}": x for k, x in rec.data.items()}
    if isinstance(v.data_files, dict):
        for path, h in v.data_files.items():
            out["data"][f"file {path}"] = str(h.get("sha256") if isinstance(h, dict) else h)
    out["environment"] = dict(rec.environment)
    for name, (version, origin) in packages(rec.requirements).items():
        out["packages"][name] = version + (f" ({origin})" if origin else "")
    out["hardware"] = dict(rec.hardware)
    det = {k: x for k, x in rec.seeds.items()}
    for tag in (TAG_DETERMINISTIC, TAG_DETERMINISTIC_APPLIED):
        if tag in rec.tags:
            det[tag.removeprefix("ml_experiment.")] = rec.tags[tag]
    det.update(_numerics(v.numerics))
    out["determinism"] = det
    return out


def _numerics(numerics: Any) -> dict[str, str]:
    if not isinstance(numerics, dict):
        return {}
    out: dict[str, str] = {}
    for var, value in (numerics.get("env") or {}).items():
        out[f"env {var}"] = str(value)
    for pool in numerics.get("threadpools") or []:
        if isinstance(pool, dict):
            name = key = f"threadpool {pool.get('user_api', '?')} {pool.get('internal_api', '?')}"
            n = 1
            while key in out:  # e.g. numpy's and scipy's own OpenBLAS
                n += 1
                key = f"{name} #{n}"
            out[key] = f"{pool.get('version')}, {pool.get('num_threads')} threads"
    flags = numerics.get("cpu_flags")
    if flags:
        out["cpu_flags"] = " ".join(sorted(str(flags).split()))
    gpu = numerics.get("gpu")
    if isinstance(gpu, dict):
        out.update({f"gpu {k}": str(x) for k, x in gpu.items()})
    return out


# -- code --------------------------------------------------------------------------------------
def _unified(a: str, b: str, name_a: str, name_b: str) -> str:
    lines = difflib.unified_diff(
        a.splitlines(keepends=True), b.splitlines(keepends=True), name_a, name_b
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _code_diff(a: RunView, b: RunView) -> str:
    """How the two code states differ: commits (when the repository is here), patch, snapshot."""
    parts: list[str] = []
    ca, cb = a.record.code.get("commit"), b.record.code.get("commit")
    root = a.record.code.get("root") or b.record.code.get("root")
    if ca and cb and ca != cb and root and Path(root).is_dir():
        parts.append(_git_diff(root, ca, cb))
    pa, pb = a.record.code.get("patch") or "", b.record.code.get("patch") or ""
    if pa != pb:
        patch = TEXT_FILES["patch"]
        parts.append(_unified(pa, pb, f"{a.run_id[:8]}/{patch}", f"{b.run_id[:8]}/{patch}"))
    if a.snapshot_files or b.snapshot_files:
        parts.append(_snapshot_diff(a, b))
    text = "".join(parts)
    if len(text) > _CODE_DIFF_LIMIT:
        text = text[:_CODE_DIFF_LIMIT] + f"\n... (cut at {_CODE_DIFF_LIMIT} characters)\n"
    return text


def _git_diff(root: str, ca: str, cb: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", root, "diff", ca, cb],
            capture_output=True,
            text=True,
            timeout=60,
            errors="replace",
        )
    except (OSError, subprocess.TimeoutExpired):
        return f"# commits {ca[:12]} and {cb[:12]}: git diff failed\n"
    if done.returncode != 0:
        return f"# commits {ca[:12]} and {cb[:12]} are not both in {root}: no diff of them\n"
    return done.stdout


def _snapshot_diff(a: RunView, b: RunView) -> str:
    from ml_experiment.reproduce._read import open_client

    client, _ = open_client(a.tracking_uri)
    prefix = SNAPSHOT_DIR + "/"
    files_a = {n.removeprefix(prefix): n for n in a.snapshot_files}
    files_b = {n.removeprefix(prefix): n for n in b.snapshot_files}
    out: list[str] = []
    for rel in sorted(set(files_a) | set(files_b)):
        ta = read_artifact(client, a.code_run_id, files_a[rel]) if rel in files_a else ""
        tb = read_artifact(client, b.code_run_id, files_b[rel]) if rel in files_b else ""
        if ta != tb:
            out.append(_unified(ta, tb, f"{a.run_id[:8]}/{rel}", f"{b.run_id[:8]}/{rel}"))
    return "".join(out)


# -- output ------------------------------------------------------------------------------------
def print_diff(diff: Diff, *, show_all: bool = False) -> None:
    """The comparison as a table (then the code diff), on stdout."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=140)  # a file or a pipe: no terminal to fit
    rows = diff.shown(show_all)
    head_a = f"A {diff.run_a[:8]} {diff.name_a}"
    head_b = f"B {diff.run_b[:8]} {diff.name_b}"
    if not rows and not diff.code_diff:
        out.print(
            f"runs {diff.run_a} and {diff.run_b} do not differ (--all shows what they record)"
        )
        return
    if rows:
        table = Table(show_lines=False)
        table.add_column("section", style="bold")
        table.add_column("key", overflow="fold")
        table.add_column(escape(head_a), overflow="fold")
        table.add_column(escape(head_b), overflow="fold")
        last = None
        for r in rows:
            section = r.section if r.section != last else ""
            last = r.section
            style = None if r.same else "yellow"
            table.add_row(
                section,
                escape(r.key),
                escape("-" if r.a is None else r.a),
                escape("-" if r.b is None else r.b),
                style=style,
            )
        out.print(table)
    if diff.code_diff:
        out.print("code diff (A -> B):")
        out.print(escape(diff.code_diff), end="", soft_wrap=True)
