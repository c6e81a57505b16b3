"""The ``ml-experiment`` command (Typer): a thin layer over the Python API."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ml_experiment.cli._audit_cmd import audit_command, diff_command
from ml_experiment.cli._outcome import Carrier, interrupted_code, report
from ml_experiment.cli._package_cmd import package_command
from ml_experiment.cli._report_cmd import report_command
from ml_experiment.cli._reproduce_cmd import reproduce_command

app = typer.Typer(
    name="ml-experiment",
    help="Run instrumented scripts described by a job file; every run lands in the knowledge center.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("report")(report_command)
app.command("package")(package_command)
_PROCESS_ARGS: list[str] = []  # the command line, when this process is the command
app.command("audit")(audit_command)
app.command("diff")(diff_command)
app.command("reproduce")(reproduce_command)


def _opt(*names: str, help: str, **kw: Any) -> Any:
    return typer.Option(*names, help=help, **kw)


@app.command("run")
def run(
    config: Annotated[
        str | None, typer.Argument(help="Job file (YAML or JSON), or a script.")
    ] = None,
    scripts: Annotated[
        list[str] | None, typer.Argument(help="Scripts to run (override `run:`).")
    ] = None,
    config_file: Annotated[
        str | None, _opt("--config_file", "--config-file", help="Job file.")
    ] = None,
    name: Annotated[str | None, _opt("--name", help="Job name.")] = None,
    kind: Annotated[str | None, _opt("--kind", help="job | experiment | group.")] = None,
    params: Annotated[
        str | None, _opt("--params", help="Params: JSON/YAML dict or a file.")
    ] = None,
    param_space: Annotated[
        str | None, _opt("--param_space", "--param-space", help="Search space: dict or file.")
    ] = None,
    num_trials: Annotated[
        int | None, _opt("--num_trials", "--num-trials", help="Trials of a group.")
    ] = None,
    timeout_per_trial: Annotated[
        float | None, _opt("--timeout_per_trial", "--timeout-per-trial", help="Seconds per trial.")
    ] = None,
    sampler: Annotated[
        str | None, _opt("--sampler", help="tpe, random, cmaes, gp, qmc, grid, nsga2.")
    ] = None,
    pruner: Annotated[
        str | None, _opt("--pruner", help="hyperband, sha, median, percentile, none.")
    ] = None,
    metric_key: Annotated[
        str | None, _opt("--metric_key", "--metric-key", help="Metric to optimise.")
    ] = None,
    metric_direction: Annotated[
        str | None, _opt("--metric_direction", "--metric-direction", help="maximize | minimize.")
    ] = None,
    seed: Annotated[int | None, _opt("--seed", help="Seed every random generator.")] = None,
    tracking_uri: Annotated[
        str | None, _opt("--tracking_uri", "--tracking-uri", help="Knowledge center URI.")
    ] = None,
    docker_image: Annotated[
        str | None, _opt("--docker_image", "--docker-image", help="Image.")
    ] = None,
    dockerfile: Annotated[str | None, _opt("--dockerfile", help="Dockerfile path.")] = None,
    docker_context: Annotated[
        str | None, _opt("--docker_context", "--docker-context", help="Build context.")
    ] = None,
    docker_build_args: Annotated[
        str | None, _opt("--docker_build_args", "--docker-build-args", help="Build args dict.")
    ] = None,
    ray_config: Annotated[
        str | None, _opt("--ray_config", "--ray-config", help="ray.init options dict.")
    ] = None,
    study_storage: Annotated[
        str | None,
        _opt("--study_storage", "--study-storage", help="Optuna storage URL of a group's study."),
    ] = None,
    resume: Annotated[bool, _opt("--resume", help="Continue an interrupted group.")] = False,
    deterministic: Annotated[
        bool, _opt("--deterministic", help="Apply the determinism switches (torch, TF, hashing).")
    ] = False,
    quiet: Annotated[bool, _opt("--quiet", "-q", help="Show only the summary at the end.")] = False,
    verbose: Annotated[
        bool, _opt("--verbose", "-v", help="Show everything, Ray's and MLflow's lines too.")
    ] = False,
) -> None:
    """Run a job file (or scripts): an untracked job, one experiment, or a group search."""
    from ml_experiment.config import load_config, read_mapping

    positional = [p for p in [config, *(scripts or [])] if p is not None]
    if config_file is None and positional and not positional[0].endswith(".py"):
        config_file, positional = positional[0], positional[1:]
    overrides: dict[str, Any] = {}
    if positional:
        overrides["run"] = positional
        if config_file is None and name is None:
            overrides["name"] = Path(positional[0]).stem
    simple = {
        "name": name,
        "kind": kind,
        "num_trials": num_trials,
        "timeout_per_trial": timeout_per_trial,
        "sampler": sampler,
        "pruner": pruner,
        "seed": seed,
        "tracking_uri": tracking_uri,
        "study_storage": study_storage,
    }
    overrides.update({k: v for k, v in simple.items() if v is not None})
    if deterministic:
        overrides["deterministic"] = True
    for key, text in (("params", params), ("param_space", param_space), ("ray_config", ray_config)):
        if text is not None:
            overrides[key] = read_mapping(text, what=f"--{key}")
    if metric_key is not None or metric_direction is not None:
        metric: dict[str, Any] = {}
        if metric_key is not None:
            metric["name"] = metric_key
        if metric_direction is not None:
            metric["direction"] = metric_direction
        overrides["metric"] = metric
    docker: dict[str, Any] = {}
    if docker_image is not None:
        docker["image"] = docker_image
    if dockerfile is not None:
        docker["dockerfile"] = dockerfile
    if docker_context is not None:
        docker["context"] = docker_context
    if docker_build_args is not None:
        docker["args"] = read_mapping(docker_build_args, what="--docker_build_args")
    if docker:
        overrides["docker_config"] = docker
    job_config = load_config(config_file, overrides)
    if (
        job_config.deterministic
        and _PROCESS_ARGS
        and sys.flags.hash_randomization
        and not os.environ.get("PYTHONHASHSEED")
    ):
        # The hash seed is fixed at interpreter start: start again with it, before any write.
        os.environ["PYTHONHASHSEED"] = "0"
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "ml_experiment", *_PROCESS_ARGS])

    from ml_experiment._output import NORMAL, QUIET, VERBOSE, shown
    from ml_experiment.execution import run_job

    try:
        with shown(VERBOSE if verbose else QUIET if quiet else NORMAL):
            run_job(job_config, resume=resume)
    except KeyboardInterrupt as exc:
        raise Carrier(exc) from exc


@app.command("ui")
def ui(
    config: Annotated[
        str | None, typer.Argument(help="A job file whose tracking_uri to use.")
    ] = None,
    host: Annotated[str, _opt("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, _opt("--port", help="Port.")] = 5000,
    tracking_uri: Annotated[
        str | None, _opt("--tracking_uri", "--tracking-uri", help="Knowledge center URI.")
    ] = None,
) -> None:
    """Serve the MLflow UI on the knowledge center (loopback only unless --host says otherwise)."""
    from ml_experiment.tracking import KnowledgeCenter

    uri = tracking_uri
    if uri is None and config is not None:
        from ml_experiment.config import load_config

        uri = load_config(config).tracking_uri
    kc = KnowledgeCenter.resolve(uri)
    if kc.tracking_uri.startswith(("http://", "https://")):
        print(
            f"The knowledge center is the MLflow server at {kc.tracking_uri}: open it in a browser."
        )
        return
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", kc.tracking_uri,
        "--host", host, "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    if kc.artifact_root is not None:
        cmd += ["--default-artifact-root", kc.artifact_root.as_uri()]
    print(f"MLflow UI on http://{host}:{port} for {kc.tracking_uri} (Ctrl-C to stop)", flush=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    from ml_experiment.cli._ui import serve

    raise typer.Exit(serve(cmd, env))


def main(argv: list[str] | None = None) -> None:
    """Entry point; how it ends (exit code and message) is decided in ``cli._outcome``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None:
        _PROCESS_ARGS[:] = args
    # The thesis form `ml-experiment --config_file x.yaml` means `ml-experiment run ...`.
    if args and args[0].startswith("--") and args[0] not in ("--help", "--version"):
        args.insert(0, "run")
    if args[:1] == ["--version"]:
        from ml_experiment import __version__

        print(f"ml-experiment {__version__}")
        raise SystemExit(0)
    try:
        # Outside standalone mode Typer raises usage errors and returns typer.Exit(n)'s code.
        code = app(args=args, prog_name="ml-experiment", standalone_mode=False)
    except SystemExit:
        raise
    except BaseException as exc:
        outcome = exc.original if isinstance(exc, Carrier) else exc
        if isinstance(outcome, typer.Exit):
            raise SystemExit(outcome.exit_code) from None
        if isinstance(outcome, typer.Abort):
            outcome = KeyboardInterrupt()
        exit_code = report(outcome)
        if exit_code is None:
            raise  # a bug: its traceback is what helps
        raise SystemExit(exit_code) from None
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        raise SystemExit(interrupted_code(code))
