"""``ml-experiment package RUN_ID``: a Docker build context (and image) that re-creates a run."""

from __future__ import annotations

import sys
from typing import Annotated

import typer


def package_command(
    run_id: Annotated[str, typer.Argument(help="The run to package.")],
    out: Annotated[
        str | None,
        typer.Option("--out", help="Folder for the build context (default: ./packages/RUN_ID)."),
    ] = None,
    build: Annotated[
        bool, typer.Option("--build", help="Also build the image and print its id.")
    ] = False,
    base: Annotated[
        str | None,
        typer.Option(
            "--base", help="Base image with Python (default: python:X.Y-slim of the run)."
        ),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking_uri", "--tracking-uri", help="Knowledge center URI."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="A failed build's last lines too.")
    ] = False,
) -> None:
    """Write a build context that re-creates a recorded run: code, job file, pinned wheels."""
    import os

    from ml_experiment._output import NORMAL, VERBOSE, shown

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per file read
    from ml_experiment.package import package_run

    with shown(VERBOSE if verbose else NORMAL):
        result = package_run(run_id, out=out, tracking_uri=tracking_uri, base=base, build=build)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(result.path)
    if result.image_id is not None:
        print(result.image_id)
