"""How long `ml-experiment report` takes on a large group, and how big its page is.

Synthesises a finished group the way the group driver records one (an Optuna journal study
with intermediate values, a parent MLflow run and one child run per trial, written through
the same one-transaction path), without Ray, then times the report twice:

- *build*: ``build_report(...)`` in this process, libraries already imported;
- *command*: ``ml-experiment report NAME --tracking_uri ... --out ...`` as a user types it
  (a fresh process: imports, reading, drawing, writing and logging the artifacts).

    python benchmarks/report_bench.py                 # 2,000 trials (synthesis ~1-2 min)
    python benchmarks/report_bench.py --trials 40     # a README-sized group
    python benchmarks/report_bench.py --update-readme # also refresh the table in README.md
    python benchmarks/report_bench.py --keep /tmp/r   # keep the reports to look at
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLI = str(Path(sys.executable).parent / "ml-experiment")
MARK_START = "<!-- report-bench:start -->"
MARK_END = "<!-- report-bench:end -->"


def synthesise(base: Path, n: int, workers: int, steps: int, seed: int) -> dict[str, Any]:
    """A finished group of ``n`` trials (20% pruned, 5% failed, 2% timed out) on ``workers``."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from ml_experiment.hpo import open_storage
    from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kc = KnowledgeCenter.resolve(f"sqlite:///{base / 'mlruns.db'}")
    tracker = MLflowTracker(kc)
    name = f"bench-{n}"
    storage = str(kc.studies_path)
    study = optuna.create_study(
        study_name=name, storage=open_storage(storage), direction="maximize"
    )
    dists = {
        "learning_rate": FloatDistribution(1e-4, 1, log=True),
        "max_depth": IntDistribution(2, 14),
        "subsample": FloatDistribution(0.1, 0.9),
        "min_child_weight": FloatDistribution(0.01, 1, log=True),
        "gamma": CategoricalDistribution([0, 0.5, 2, 10, 20]),
        "rounds": CategoricalDistribution([10, 100, 250, 500, 1000, 2500]),
    }
    parent = tracker.create_run(
        name,
        run_name=name,
        tags={
            "ml_experiment.kind": "group",
            "ml_experiment.study": name,
            "ml_experiment.study_storage": storage,
        },
    )
    tracker.log(
        parent,
        params={
            **{f"param_space.{k}": repr(v) for k, v in dists.items()},
            "metric": "val_accuracy (maximize)",
            "num_trials": n,
        },
    )
    study.set_user_attr("ml_experiment.parent_run_id", parent)
    rng = random.Random(seed)
    free = [1_700_000_000.0] * workers
    trials, runs = [], []
    ts = optuna.trial.TrialState
    for number in range(n):
        p = {k: d.to_external_repr(d.to_internal_repr(_draw(rng, d))) for k, d in dists.items()}
        quality = 1 - abs(math.log10(p["learning_rate"]) + 1.5) / 4 - abs(p["max_depth"] - 6) / 40
        roll = rng.random()
        state = "fail" if roll < 0.07 else "pruned" if roll < 0.27 else "complete"
        error = None
        if state == "fail":
            error = (
                "timed out: ran longer than timeout_per_trial=600s and was stopped"
                if roll < 0.02
                else "MemoryError: the booster did not fit in memory"
            )
        last = steps if state == "complete" else max(1, steps // 4)
        curve = {
            i: 0.25 + quality * 0.65 * (1 - math.exp(-(i + 1) / 5)) + rng.gauss(0, 0.005)
            for i in range(last)
        }
        lane = min(range(workers), key=lambda i: free[i])
        start = free[lane] + 0.05
        end = start + (600 if error and error.startswith("timed") else 20 + rng.random() * 60)
        free[lane] = end
        trials.append(
            optuna.trial.create_trial(
                params=p,
                distributions=dists,
                state={"fail": ts.FAIL, "pruned": ts.PRUNED, "complete": ts.COMPLETE}[state],
                value=curve[last - 1] if state == "complete" else None,
                intermediate_values=curve if state != "fail" else {},
            )
        )
        metrics = {"duration_s": end - start}
        if state == "complete":
            metrics.update(val_accuracy=curve[last - 1], train_accuracy=curve[last - 1] + 0.03)
        tags: dict[str, Any] = {
            "ml_experiment.trial_number": number,
            "ml_experiment.trial_state": state,
            "ml_experiment.worker": str(1000 + lane),
        }
        if error:
            tags["error"] = error
        runs.append(
            dict(
                run_name=f"trial-{number}",
                status={"complete": "FINISHED", "fail": "FAILED", "pruned": "KILLED"}[state],
                start_time=start,
                end_time=end,
                tags=tags,
                parent_run_id=parent,
                params=p,
                metrics=metrics,
                step=last - 1,
                steps=[(i, {"val_accuracy": v}) for i, v in curve.items()]
                if state != "fail"
                else [],
            )
        )
    study.add_trials(trials)
    for kwargs in runs:
        tracker.record_run(name, **kwargs)
    tracker.end_run(parent, "FINISHED")
    return {"uri": kc.tracking_uri, "name": name, "parent": parent}


def _draw(rng: random.Random, d: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if isinstance(d, CategoricalDistribution):
        return rng.choice(d.choices)
    if isinstance(d, FloatDistribution):
        if d.log:
            return 10 ** rng.uniform(math.log10(d.low), math.log10(d.high))
        return rng.uniform(d.low, d.high)
    return rng.randint(d.low, d.high)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from ml_experiment.report import build_report

    with tempfile.TemporaryDirectory(prefix="mlx-report-bench-") as tmp:
        base = Path(tmp)
        t0 = time.perf_counter()
        group = synthesise(base, args.trials, args.workers, args.steps, args.seed)
        synth_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        index = build_report(group["parent"], tracking_uri=group["uri"], out_dir=base / "inproc")
        build_s = time.perf_counter() - t0
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        cmd = [CLI, "report", group["name"], "--tracking_uri", group["uri"], "--out", "cli"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=base, env=env, capture_output=True, text=True)
        command_s = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"ml-experiment report failed:\n{done.stdout}\n{done.stderr}")
        pngs = sorted(index.parent.glob("*.png"))
        result = {
            "trials": args.trials,
            "workers": args.workers,
            "steps": args.steps,
            "synthesis_s": round(synth_s, 1),
            "build_s": round(build_s, 2),
            "command_s": round(command_s, 2),
            "html_mb": round(index.stat().st_size / 1e6, 2),
            "pngs": len(pngs),
            "png_mb": round(sum(p.stat().st_size for p in pngs) / 1e6, 2),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "load_avg": [round(x, 2) for x in os.getloadavg()],
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        if args.keep:
            keep = Path(args.keep) / f"report-{args.trials}"
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(index.parent, keep)
            result["kept"] = str(keep)
    return result


def update_readme(results: list[dict[str, Any]]) -> None:
    readme = HERE / "README.md"
    rows = [
        "| trials | build (in process) | `ml-experiment report` command | index.html | PNGs | load avg |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['trials']:,} | {r['build_s']:.1f} s | {r['command_s']:.1f} s | "
            f"{r['html_mb']:.1f} MB | {r['pngs']} ({r['png_mb']:.1f} MB) | "
            f"{', '.join(str(x) for x in r['load_avg'])} |"
        )
    when = results[-1]["when"]
    table = "\n".join([MARK_START, *rows, "", f"_{results[-1]['machine']}; {when}._", MARK_END])
    text = readme.read_text(encoding="utf-8")
    if MARK_START in text:
        text = re.sub(re.escape(MARK_START) + ".*?" + re.escape(MARK_END), table, text, flags=re.S)
    else:
        text += "\n" + table + "\n"
    readme.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[2000])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="learning-curve steps per trial")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", metavar="DIR", help="copy each report to DIR/report-N")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results" / "report.json"))
    args = parser.parse_args()
    results = []
    for n in args.trials:
        one = argparse.Namespace(**{**vars(args), "trials": n})
        r = measure(one)
        print(json.dumps(r), flush=True)
        results.append(r)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.update_readme:
        update_readme(results)


if __name__ == "__main__":
    main()
