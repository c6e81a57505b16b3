"""``python train.py --C 0.5``: a decorated script run directly is one tracked experiment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_experiment.exceptions import ConfigError, MLExperimentError

if TYPE_CHECKING:
    from ml_experiment._job import JobFunction

__all__ = ["DirectLaunch", "parse_flags"]


def parse_flags(argv: list[str], job_fn: JobFunction) -> dict[str, Any]:
    """``--name value`` / ``--name=value`` pairs; values are read as YAML scalars (data, never code)."""
    from ml_experiment.config import parse_value

    params: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(
                f"unexpected argument {arg!r}; use --<parameter> <value>", source="command line"
            )
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise ConfigError(f"--{key} needs a value", source="command line", field=key)
            value = argv[i + 1]
            i += 1
        params[key.replace("-", "_")] = parse_value(value)
        i += 1
    return params


def _usage(job_fn: JobFunction, script: str) -> str:
    lines = [f"usage: python {script} [--<param> <value>]...", "", "parameters:"]
    for name, p in job_fn.signature.parameters.items():
        default = "required" if p.default is p.empty else f"default {p.default!r}"
        lines.append(f"  --{name}  ({default})")
    return "\n".join(lines)


class DirectLaunch:
    """Runs the job function as a single tracked experiment with signature defaults and flags.

    It ends the way ``ml-experiment run`` does (``cli._outcome``): a failed run, bad input or
    Ctrl-C prints its message and exits with its code.
    """

    def execute(self, job_fn: JobFunction, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        from ml_experiment import _runtime
        from ml_experiment._output import NORMAL, shown
        from ml_experiment.cli._outcome import report
        from ml_experiment.config import load_config
        from ml_experiment.execution._experiment import run_experiment
        from ml_experiment.execution._invoke import bind_params

        script = Path(job_fn.source_file or sys.argv[0]).resolve()
        argv = sys.argv[1:] if Path(sys.argv[0]).resolve() == script else []
        if any(a in ("-h", "--help") for a in argv):
            print(_usage(job_fn, script.name))
            raise SystemExit(0)
        with _runtime.launched(_runtime.PlainCall()):
            try:
                flags = parse_flags(argv, job_fn)
                overrides = {"kind": "experiment", "name": script.stem, "run": [script]}
                config = load_config(None, {**overrides, "params": {**flags, **kwargs}})
                # Checked here too, so that an error names the command line as its source.
                bind_params(
                    job_fn.signature, config.params, fn_name=job_fn.name, source="command line"
                )
                with shown(NORMAL):
                    outcome = run_experiment(config, job_fn, script=script)
            except (MLExperimentError, KeyboardInterrupt) as exc:
                code = report(exc)
                raise SystemExit(code) from None
        return outcome.value
