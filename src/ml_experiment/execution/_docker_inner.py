"""Inside the container: run the job file the host wrote, and end as ``ml-experiment run`` would.

``python -m ml_experiment.execution._docker_inner LAUNCH_JSON``; the host maps the exit code back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run the launch file's job; the exit code the CLI would give."""
    from ml_experiment._output import shown
    from ml_experiment.cli._outcome import report
    from ml_experiment.config import load_config
    from ml_experiment.execution._scripts import run_job

    spec = json.loads(Path(argv[0]).read_text())
    try:
        config = load_config(spec["job"])
        if spec.get("source"):  # the run records the user's job file, not the launch copy
            config = config.model_copy(update={"source": Path(spec["source"])})
        with shown(int(spec.get("verbosity", 0))):
            run_job(config, resume=bool(spec.get("resume")))
    except BaseException as exc:
        code = report(exc)
        if code is None:
            raise
        return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
