"""``ml-experiment audit RUN_ID`` and ``ml-experiment diff RUN_A RUN_B``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ml_experiment.reproduce._audit import Audit

_URI = typer.Option("--tracking_uri", "--tracking-uri", help="Knowledge center URI.")
_JSON = typer.Option("--json", help="Print the result as JSON.")


def audit_command(
    run_id: Annotated[str, typer.Argument(help="The run to grade.")],
    as_json: Annotated[bool, _JSON] = False,
    log: Annotated[
        bool,
        typer.Option("--log/--no-log", help="Store the result on the run (audit.* tags, report)."),
    ] = True,
    tracking_uri: Annotated[str | None, _URI] = None,
) -> None:
    """Grade a run's record against the reproducibility checklist (PASS / WARN / FAIL).

    Exit code 0 when no item FAILs, 1 otherwise.
    """
    from ml_experiment.reproduce._audit import audit_run

    audit = audit_run(run_id, tracking_uri=tracking_uri, store=log)
    if as_json:
        print(json.dumps(audit.to_dict(), indent=2))
    else:
        _print_audit(audit, stored=log)
    if audit.result != "pass":
        raise typer.Exit(1)


def _print_audit(audit: Audit, *, stored: bool) -> None:
    from rich.console import Console
    from rich.markup import escape

    from ml_experiment.reproduce._audit import FAIL, PASS

    colour = {PASS: "green", FAIL: "red"}
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"audit of run {audit.run_id} ({escape(audit.run_name)!r}, experiment ", end="")
    out.print(f"{escape(audit.experiment)!r})")
    width = max(len(i.name) for i in audit.items)
    for item in audit.items:
        style = colour.get(item.grade, "yellow")
        out.print(f"  [{style}]{item.grade}[/]  {item.name:<{width}}  {escape(item.evidence)}")
        if item.fix:
            out.print(f"        {'':<{width}}  fix: {escape(item.fix)}")
    counts = {g: sum(i.grade == g for i in audit.items) for g in ("FAIL", "WARN")}
    line = f"score {audit.score}: {counts['FAIL']} FAIL, {counts['WARN']} WARN"
    if stored:
        line += " (stored on the run: audit.score, audit.result, audit/report.json)"
    out.print(line)


def diff_command(
    run_a: Annotated[str, typer.Argument(help="First run id.")],
    run_b: Annotated[str, typer.Argument(help="Second run id.")],
    show_all: Annotated[bool, typer.Option("--all", help="Also show what is equal.")] = False,
    as_json: Annotated[bool, _JSON] = False,
    tracking_uri: Annotated[str | None, _URI] = None,
) -> None:
    """Compare two runs side by side: params, metrics, tags, code, packages, hardware, numerics."""
    from ml_experiment.reproduce._diff import diff_runs, print_diff

    diff = diff_runs(run_a, run_b, tracking_uri=tracking_uri)
    if as_json:
        print(json.dumps(diff.to_dict(show_all), indent=2))
    else:
        print_diff(diff, show_all=show_all)
