"""The group progress bar: drawn on a terminal, silent when output is not one."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import all_runs, client, run_cli, write

pytestmark = pytest.mark.slow

GROUP = """
name: bar
kind: group
report: false
num_trials: 4
sampler: random
seed: 1
param_space: {x: 'uniform(0, 1)'}
metric: {name: y, direction: minimize}
ray_config: {num_cpus: 2}
run: [obj.py]
"""


def _setup(folder: Path) -> None:
    write(
        folder / "obj.py",
        "from ml_experiment import job\n@job\ndef main(x=0.0):\n    return {'y': x}\n",
    )
    write(folder / "g.yaml", GROUP)


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    _setup(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "ML_EXPERIMENT_NO_PROGRESS"}
    env["COLUMNS"] = "160"
    main, child = pty.openpty()
    cli = str(Path(sys.executable).parent / "ml-experiment")
    proc = subprocess.Popen(
        [cli, "run", "g.yaml"], cwd=tmp_path, env=env, stdin=child, stdout=child, stderr=child
    )
    os.close(child)
    out = b""
    deadline = time.time() + 240
    while time.time() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(main)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-2000:]
    assert "4/4" in text and "failed 0" in text and "pruned 0" in text
    # The bar's best is the study's best: the value MLflow records on the parent run.
    parent = next(
        r for r in all_runs(client(tmp_path), "bar") if "mlflow.parentRunId" not in r.data.tags
    )
    shown = re.findall(r"running \d+ +failed \d+ +pruned \d+ +best (\S+)", text)
    assert shown and shown[-1] == f"{parent.data.metrics['best_y']:.6g}", (shown, text[-2000:])
    # Never worse than an earlier value (minimize): the bar shows the best so far.
    values = [float(v) for v in shown if v != "-"]
    assert values == sorted(values, reverse=True)


def test_no_progress_bar_when_not_a_terminal(tmp_path: Path) -> None:
    _setup(tmp_path)
    res = run_cli("run", "g.yaml", cwd=tmp_path, env={"ML_EXPERIMENT_NO_PROGRESS": ""})
    assert res.returncode == 0, res.stderr
    assert "4/4" not in res.stdout + res.stderr and "\x1b[?25l" not in res.stdout
