"""Running the scripts of a job file in this process, the way ``python script.py`` would."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_experiment import _runtime
from ml_experiment.exceptions import ConfigError
from ml_experiment.execution._load import script_environment

if TYPE_CHECKING:
    from ml_experiment._job import JobFunction


class ScriptLaunch:
    """The launch of one script of a job file: its ``@job`` function runs as the job file says."""

    def __init__(self, config: Any, script: Path, index: int, *, resume: bool = False) -> None:
        self.config = config
        self.resume = resume
        self.script = script
        self.index = index
        self.called = False
        self.result: Any = None

    def execute(self, job_fn: JobFunction, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.called:
            # A second @job call in the same script is ordinary code of the first one.
            return job_fn.fn(*args, **kwargs)
        self.called = True
        if args:
            raise ConfigError(
                f"{job_fn.name}() must be called without positional arguments under ml-experiment",
                source=self.script,
            )
        if self.config.kind == "group":
            from ml_experiment.execution.group import run_group

            self.result = run_group(self.config, job_fn, script=self.script, resume=self.resume)
        else:
            from ml_experiment.execution._experiment import run_experiment

            self.result = run_experiment(self.config, job_fn, script=self.script, kwargs=kwargs)
        return getattr(self.result, "value", None)


def run_job(config: Any, *, resume: bool = False) -> list[Any]:
    """Run every script of ``config`` in order, each its own run; stop at the first failure."""
    if resume and config.kind != "group":
        raise ConfigError("--resume applies to groups only", source=config.source, field="kind")
    if config.docker_config is not None:
        from ml_experiment.execution._docker import run_in_container

        return run_in_container(config, resume=resume)
    if config.deterministic:  # before Ray starts: its workers inherit the variables
        from ml_experiment.execution._determinism import prepare_environment

        prepare_environment()
    outcomes = []
    for i, script in enumerate(config.run):
        launch = ScriptLaunch(config, Path(script), i, resume=resume)
        _runtime.take_registered()
        with _runtime.launched(launch):
            with script_environment(launch.script, "__main__"):
                runpy.run_path(str(launch.script), run_name="__main__")
            if not launch.called:
                found = _runtime.take_registered()
                if found:
                    # The script has no ``if __name__ == "__main__": main()``: call it ourselves.
                    launch.execute(found[-1], (), {})
                elif config.kind != "job":
                    raise ConfigError(
                        f"{launch.script.name} defines no @job function, so nothing could be "
                        "tracked; decorate its entry point with @job",
                        source=config.source,
                        field=f"run[{i}]",
                    )
        outcomes.append(launch.result)
    return outcomes
