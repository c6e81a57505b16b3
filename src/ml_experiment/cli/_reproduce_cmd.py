"""``ml-experiment reproduce RUN_ID``: re-run a recorded run and verify its metrics."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer


def reproduce_command(
    run_id: Annotated[str, typer.Argument(help="The run to re-run (a group's parent run too).")],
    rtol: Annotated[float, typer.Option("--rtol", help="Relative tolerance.")] = 0.0,
    atol: Annotated[float, typer.Option("--atol", help="Absolute tolerance.")] = 0.0,
    trials: Annotated[
        str, typer.Option("--trials", help="A group's trials: best, all, or numbers (3,7).")
    ] = "best",
    search: Annotated[
        bool, typer.Option("--search", help="Re-run a seeded group's search; same proposals?")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON.")] = False,
    tracking_uri: Annotated[
        str | None, typer.Option("--tracking_uri", "--tracking-uri", help="Knowledge center URI.")
    ] = None,
) -> None:
    """Re-run RUN_ID from its record: identical, within tolerance, differs or cannot reproduce.

    Exit code 0 when it reproduces (identical or within tolerance), 1 when it differs or cannot
    be reproduced, 2 for bad input. The verdict is stored on both runs.
    """
    from ml_experiment.reproduce import CannotReproduce, reproduce
    from ml_experiment.reproduce._verdict import render

    try:
        verdicts = reproduce(
            run_id, tracking_uri=tracking_uri, rtol=rtol, atol=atol, trials=trials, search=search
        )
    except CannotReproduce as exc:
        if as_json:
            print(
                json.dumps({"run_id": run_id, "verdict": "cannot reproduce", "reason": exc.reason})
            )
        else:
            print(str(exc), file=sys.stderr)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps([v.to_json() for v in verdicts], indent=2))
    else:
        for verdict in verdicts:
            print("\n".join(render(verdict)))
        if len(verdicts) > 1:
            ok = sum(v.ok for v in verdicts)
            print(f"{ok}/{len(verdicts)} trials reproduced")
    if not all(v.ok for v in verdicts):
        raise typer.Exit(1)
