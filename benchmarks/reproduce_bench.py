"""What `ml-experiment reproduce` costs beyond the original run's own time, for a small run.

A git repository in a temporary folder holds the README's iris SVM experiment (with an
uncommitted change, so the patch is applied too). Measured side by side, median of ``--repeat``:

- *run*: ``ml-experiment run job.yaml`` (what the original cost);
- *reproduce*: ``ml-experiment reproduce RUN_ID`` (re-run included);
- *overhead*: reproduce minus run, and its parts measured in one process: reading the record,
  checking data, materialising the code (git archive + patch), and comparing + storing the verdict.

    python benchmarks/reproduce_bench.py                  # 3 repeats
    python benchmarks/reproduce_bench.py --update-readme  # also refresh the table in README.md
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "quickstart"
CLI = str(Path(sys.executable).parent / "ml-experiment")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=b@b", "-c", "user.name=b", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


def _timed(*args: str, cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return time.perf_counter() - started, done.stdout


def _parts(run_id: str, uri: str) -> dict[str, float]:
    """The reproduce steps that are not the re-run itself, timed in this process."""
    from ml_experiment.reproduce._materialise import materialise
    from ml_experiment.reproduce._reproduce import check_data, judge, load_original
    from ml_experiment.tracking.record import RunRecord

    t: dict[str, float] = {}
    started = time.perf_counter()
    from ml_experiment.reproduce._read import open_client

    open_client(uri)
    t["import MLflow + open the store (every command pays it)"] = time.perf_counter() - started
    started = time.perf_counter()
    record, uri = load_original(run_id, uri)
    t["read the record"] = time.perf_counter() - started
    started = time.perf_counter()
    check_data(record)
    t["check data files"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        materialise(record, Path(tmp) / "code", tracking_uri=uri)
        t["materialise code"] = time.perf_counter() - started
    started = time.perf_counter()
    judge(record, RunRecord.load(run_id, tracking_uri=uri), 0.0, 0.0)
    t["read re-run + compare"] = time.perf_counter() - started
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    root = Path(tempfile.mkdtemp(prefix="mlx-repro-bench-"))
    try:
        for name in ("train_svm.py", "svm_experiment.yaml"):
            shutil.copy(EXAMPLE / name, root / name)
        _git(root, "init", "-q", "-b", "main")
        _git(root, "add", ".")
        _git(root, "commit", "-q", "-m", "bench")
        with open(root / "train_svm.py", "a") as f:
            f.write("\n# an uncommitted change: the patch is applied too\n")
        runs, reps = [], []
        run_id = ""
        for _ in range(args.repeat):
            seconds, out = _timed("run", "svm_experiment.yaml", "-q", cwd=root)
            runs.append(seconds)
            run_id = re.findall(r"ml-experiment report ([0-9a-f]{32})", out)[-1]
            seconds, out = _timed("reproduce", run_id, cwd=root)
            assert out.startswith("identical"), out
            reps.append(seconds)
        parts = _parts(run_id, f"sqlite:///{root / 'mlruns.db'}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    run_s, rep_s = statistics.median(runs), statistics.median(reps)
    rows = [
        "| what | seconds |",
        "|---|---|",
        f"| `ml-experiment run` (the original) | {run_s:.2f} |",
        f"| `ml-experiment reproduce` (re-run included) | {rep_s:.2f} |",
        f"| **overhead** (reproduce - run) | **{rep_s - run_s:.2f}** |",
        *[f"| ... of which {k} (in one process) | {v:.3f} |" for k, v in parts.items()],
    ]
    where = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, median of {args.repeat}"
    text = "\n".join(rows) + f"\n\nMeasured {time.strftime('%Y-%m-%d')} on {where}.\n"
    print(text)
    if args.update_readme:
        from _readme import put_block  # benchmarks/, run as a script

        put_block("reproduce-bench", text, "Reproduce: overhead beyond the run")


if __name__ == "__main__":
    main()
