"""``ml-experiment report RUN_ID_OR_GROUP_NAME``: the offline HTML + PNG report of a run or group."""

from __future__ import annotations

from typing import Annotated

import typer


def report_command(
    run_id_or_group_name: Annotated[
        str, typer.Argument(help="A run id, or a group's name (its latest parent run).")
    ],
    out: Annotated[
        str | None,
        typer.Option("--out", help="Folder for index.html and the PNGs (default: ./reports/NAME)."),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking_uri", "--tracking-uri", help="Knowledge center URI."),
    ] = None,
    ui_base: Annotated[
        str,
        typer.Option("--ui_base", "--ui-base", help="MLflow UI address the trial links use."),
    ] = "http://127.0.0.1:5000",
    log: Annotated[
        bool,
        typer.Option("--log/--no-log", help="Also log the report to the run (report/...)."),
    ] = True,
) -> None:
    """Write a run's or group's report: offline HTML (plotly inline) and PNG plots."""
    from ml_experiment.report import build_report

    index = build_report(
        run_id_or_group_name,
        tracking_uri=tracking_uri,
        out_dir=out,
        ui_base=ui_base,
        log_to_run=log,
    )
    print(index.resolve())
