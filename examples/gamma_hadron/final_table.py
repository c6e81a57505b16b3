"""Test-set result of the MAGIC groups: best trial, retrained on the whole training set, tested once.

For each group (``magic-xgboost``, ``magic-svm``) the best trial's parameters are retrained as
a tracked experiment (``<group>-final``, through the CLI, ``evaluate_on: test``); accuracy
gets a 99 % Wilson score interval. Writes ``RESULTS.md`` next to this file and returns the
numbers as this run's metrics. ``ml-experiment run examples/gamma_hadron/final_table.yaml``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ml_experiment import job

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPTS = {"xgboost": "xgboost_model.py", "svm": "svm.py"}


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def wilson_interval(correct: int, n: int, confidence: float = 0.99) -> tuple[float, float]:
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return max(0.0, centre - half), min(1.0, centre + half)


def _runs(client: Any, name: str) -> list[Any]:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return []
    return list(client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"]))


def _json_artifact(client: Any, run_id: str, path: str) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(client.download_artifacts(run_id, path, tmp)).read_text())


def evaluate(client: Any, uri: str, model: str, prefix: str, params_dir: Path) -> dict[str, Any]:
    group = f"{prefix}-{model}"
    parent = next(
        (
            r
            for r in _runs(client, group)
            if "mlflow.parentRunId" not in r.data.tags and r.info.status == "FINISHED"
        ),
        None,
    )
    if parent is None:
        raise LookupError(
            f"no finished group {group!r}: run examples/gamma_hadron/{model}.yaml first"
        )
    best = _json_artifact(client, parent.info.run_id, "best_trial.json")
    params = {**best["params"], "evaluate_on": "test"}
    if model == "xgboost":
        trial = next(
            r
            for r in _runs(client, group)
            if r.data.tags.get("ml_experiment.trial_number") == str(best["number"])
            and r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
        )
        params["num_boost_round"] = int(trial.data.metrics["best_num_boost_round"])
        params["max_boost_round"] = None
    name = f"{group}-final"
    params_dir.mkdir(parents=True, exist_ok=True)
    params_file = params_dir / f"{name}.json"
    params_file.write_text(json.dumps(params, indent=2) + "\n")
    exe = Path(sys.executable).parent / "ml-experiment"
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "ml_experiment"]
    t0 = time.time()
    proc = subprocess.run(
        [*cli, "run", str(HERE / SCRIPTS[model]), "--name", name, "--seed", "1234",
         "--params", str(params_file), "--tracking_uri", uri],
        capture_output=True, text=True, env=dict(os.environ),
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    run = next(r for r in _runs(client, name) if r.info.start_time >= int(t0 * 1000) - 1000)
    m = run.data.metrics
    lo, hi = wilson_interval(int(m["test_correct"]), int(m["test_n"]))
    pm = parent.data.metrics
    return {
        "model": model,
        "group": group,
        "group_run_id": parent.info.run_id,
        "trials": f"{int(pm.get('trials_complete', 0))} done, {int(pm.get('trials_pruned', 0))} pruned, "
        f"{int(pm.get('trials_failed', 0))} failed",
        "group_minutes": pm.get("total_time_s", 0) / 60,
        "best_val_accuracy": best["values"]["val_accuracy"],
        "test_accuracy": m["test_accuracy"],
        "test_correct": int(m["test_correct"]),
        "test_n": int(m["test_n"]),
        "test_auc": m["test_auc"],
        "wilson_low": lo,
        "wilson_high": hi,
        "params": {k: v for k, v in params.items() if k != "evaluate_on"},
        "command": f"ml-experiment run examples/gamma_hadron/{SCRIPTS[model]} --name {name} "
        f"--seed 1234 --params {_rel(params_file)}",
    }


def copy_report(client: Any, uri: str, run_id: str, folder: Path) -> list[str]:
    """A group's report PNGs (``report/*.png`` of its parent run) into ``folder``, which holds
    nothing else; a group run with ``report: false`` has none, so its report is made now."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()  # another group's plots must not stay beside this one's
    logged = [a.path for a in client.list_artifacts(run_id, "report") if a.path.endswith(".png")]
    with tempfile.TemporaryDirectory(prefix="mlx-magic-") as tmp:
        if logged:
            pngs = [Path(client.download_artifacts(run_id, path, tmp)) for path in logged]
        else:
            from ml_experiment.report import build_report

            build_report(run_id, tracking_uri=uri, out_dir=tmp, client=client)
            pngs = list(Path(tmp).glob("*.png"))
        for png in pngs:
            shutil.copy(png, folder)
    return sorted(p.name for p in folder.glob("*.png"))


@job
def main(
    models: list[str] | None = None,
    group_prefix: str = "magic",
    results_path: str | None = None,
    figures_dir: str | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """Retrain each group's best trial, test it once, write RESULTS.md and copy the best
    model's group report PNGs to ``figures_dir`` (None: ``figures/`` beside RESULTS.md)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = mlflow.get_tracking_uri()
    client = MlflowClient(uri)
    out = Path(results_path) if results_path else HERE / "RESULTS.md"
    params_dir = out.resolve().parent / "final_params"
    rows = [
        evaluate(client, uri, m, group_prefix, params_dir) for m in (models or ["xgboost", "svm"])
    ]
    lines = [
        "| model | trials | best validation accuracy | test accuracy | 99 % Wilson interval | test ROC AUC |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['trials']} | {r['best_val_accuracy']:.4f} | "
            f"**{r['test_accuracy']:.4f}** ({r['test_correct']}/{r['test_n']}) | "
            f"[{r['wilson_low']:.4f}, {r['wilson_high']:.4f}] | {r['test_auc']:.4f} |"
        )
    lines += [
        "",
        "The retrainings (parameters: the best trials', in final_params/):",
        "",
        "```bash",
    ]
    lines += [r["command"] for r in rows] + ["```", ""]
    best = max(rows, key=lambda r: r["test_accuracy"])
    fig_dir = Path(figures_dir) if figures_dir else out.resolve().parent / "figures"
    pngs = copy_report(client, uri, best["group_run_id"], fig_dir)
    rel = os.path.relpath(fig_dir, out.resolve().parent)
    lines += [
        f"The search plots of the best model's group (`{best['group']}`, from its report): "
        + ", ".join(f"[{p.removesuffix('.png')}]({rel}/{p})" for p in pngs)
        + ".",
        "",
    ]
    text = "\n".join(lines)
    out.write_text("# MAGIC gamma/hadron: test-set results\n\n" + text)
    print(text)
    tmp = Path(tempfile.mkdtemp(prefix="mlx-magic-"))
    (tmp / "results.json").write_text(json.dumps(rows, indent=2))
    metrics = {}
    for r in rows:
        for k in ("test_accuracy", "wilson_low", "wilson_high", "test_auc", "best_val_accuracy"):
            metrics[f"{r['model']}.{k}"] = r[k]
    return metrics, {"results.json": str(tmp / "results.json")}


if __name__ == "__main__":
    main()
