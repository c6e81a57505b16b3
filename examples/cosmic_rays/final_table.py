"""The final table (analogue of thesis Table 7.13): each group's best trial, retrained, tested once.

For every preset and model it

1. finds the group ``<prefix>-<model>-<preset>`` in the knowledge center (its parent run, the
   latest FINISHED one) and reads the best trial (``best_trial.json``);
2. retrains that configuration on the **whole** training set as a tracked experiment,
   ``<prefix>-<model>-<preset>-final``, by running the model's script through the CLI with
   ``evaluate_on: test`` (``ml-experiment run <model>.py --params final_params/<run>.json
   --seed 1234``), so the test set is touched exactly once per model, by a run that records
   everything;
3. checks that the retraining saw the same data as the search (data fingerprint tags), and
   computes the test accuracy with its 99 % Wilson score interval.

It then writes ``RESULTS.md`` (table, budgets, best parameters and the commands that reproduce
every number) and returns the numbers as the metrics of its own run (the summary run).

Run it after the groups: ``ml-experiment run examples/cosmic_rays/final_table.yaml``.
"""

from __future__ import annotations

import json
import os
import shlex
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
MODELS = ("svm", "xgboost", "autoencoder_v1", "autoencoder_v2", "vae")
SCRIPTS = {
    "svm": "svm.py",
    "xgboost": "xgboost_model.py",
    "autoencoder_v1": "autoencoder_v1.py",
    "autoencoder_v2": "autoencoder_v2.py",
    "vae": "vae.py",
}
LABELS = {
    "svm": "SVM (Nystroem + LinearSVC)",
    "xgboost": "XGBoost",
    "autoencoder_v1": "Autoencoder v1",
    "autoencoder_v2": "Autoencoder v2",
    "vae": "VAE",
}
# Thesis Table 7.13: test accuracy and the half-width of its 99 % Wilson interval.
THESIS = {
    "svm": (0.64036, 0.0043678),
    "xgboost": (0.88519, 0.0029017),
    "autoencoder_v1": (0.69825, 0.0041778),
    "autoencoder_v2": (0.56267, 0.0045149),
    "vae": (0.38315, 0.0044247),
}
# The thesis's budgets (SPEC section 10): trials, epochs.
THESIS_BUDGET = {
    "svm": (50, None),
    "xgboost": (100, None),
    "autoencoder_v1": (100, 200),
    "autoencoder_v2": (90, 200),
    "vae": (50, 200),
}
# Parameters that only size the search; the retraining uses the whole training set.
RESET_FOR_FINAL = {"max_train_samples": None, "evaluate_on": "test"}


def wilson_interval(correct: int, n: int, confidence: float = 0.99) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (the thesis's [99])."""
    if n <= 0:
        raise ValueError("n must be positive")
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return max(0.0, centre - half), min(1.0, centre + half)


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "ml-experiment"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ml_experiment"]


def _rel(path: Path) -> str:
    """A path as typed from the repository root (where the README's commands run)."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


class Center:
    """Reads groups and runs back from the knowledge center."""

    def __init__(self, uri: str) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.client = MlflowClient(uri)

    def runs(self, experiment: str) -> list[Any]:
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        return list(
            self.client.search_runs(
                [exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=5000
            )
        )

    def parent(self, group: str) -> Any | None:
        for run in self.runs(group):
            tags = run.data.tags
            if (
                "mlflow.parentRunId" not in tags
                and tags.get("ml_experiment.kind") == "group"
                and run.info.status == "FINISHED"
            ):
                return run
        return None

    def artifact_json(self, run_id: str, path: str) -> Any:
        with tempfile.TemporaryDirectory(prefix="mlx-final-") as tmp:
            local = self.client.download_artifacts(run_id, path, tmp)
            return json.loads(Path(local).read_text())

    def trial_run(self, group: str, parent_id: str, number: int) -> Any | None:
        for run in self.runs(group):
            tags = run.data.tags
            if tags.get("mlflow.parentRunId") == parent_id and tags.get(
                "ml_experiment.trial_number"
            ) == str(number):
                return run
        return None


def group_command(config: dict[str, Any], model: str, preset: str, scale: float) -> str:
    """The command line that ran this group: the job file plus what differed from it."""
    from ml_experiment.config import load_config

    job_file = HERE / f"{model}.yaml"
    base = load_config(job_file)
    args = [f"ml-experiment run {_rel(job_file)}"]
    if config.get("name") != base.name:
        args.append(f"--name {config['name']}")
    if config.get("num_trials") != base.num_trials:
        args.append(f"--num_trials {config['num_trials']}")
    for key in ("sampler", "pruner", "seed", "timeout_per_trial"):
        if config.get(key) != getattr(base, key):
            args.append(f"--{key} {config.get(key)}")
    params = {k: v for k, v in config.get("params", {}).items() if base.params.get(k, ...) != v}
    if params:
        args.append(f"--params {shlex.quote(json.dumps(params))}")
    base_space = {k: str(v) for k, v in base.resolved_dict().get("param_space", {}).items()}
    space = {k: v for k, v in config.get("param_space", {}).items() if base_space.get(k) != str(v)}
    if space:
        args.append(f"--param_space {shlex.quote(json.dumps(space))}")
    env = f"COSMIC_PRESET={preset}" + (f" COSMIC_SCALE={scale:g}" if scale != 1 else "")
    return f"{env} " + " ".join(args)


def retrain(
    center: Center,
    model: str,
    preset: str,
    scale: float,
    prefix: str,
    seed: int,
    params_dir: Path,
) -> dict[str, Any]:
    """Best trial of the group -> one tracked retraining on the full training set, tested once.

    The retraining's parameters are written to ``params_dir/<group>-final.json``, the file
    the command reads (and the one RESULTS.md's command names).
    """
    group = f"{prefix}-{model}-{preset}"
    parent = center.parent(group)
    if parent is None:
        raise LookupError(
            f"no finished group {group!r} in {center.uri}: run "
            f"`COSMIC_PRESET={preset} ml-experiment run {_rel(HERE / (model + '.yaml'))} "
            f"--name {group}` first"
        )
    best = center.artifact_json(parent.info.run_id, "best_trial.json")
    config = center.artifact_json(parent.info.run_id, "config/job.json")
    params = dict(best["params"])
    params.update(RESET_FOR_FINAL)
    if model == "xgboost":
        # No validation set to stop on: train for as many rounds as early stopping kept.
        trial = center.trial_run(group, parent.info.run_id, best["number"])
        rounds = trial.data.metrics.get("best_num_boost_round") if trial else None
        if rounds:
            params["num_boost_round"] = int(rounds)
        params["max_boost_round"] = None
    name = f"{group}-final"
    params_dir.mkdir(parents=True, exist_ok=True)
    params_file = params_dir / f"{name}.json"
    params_file.write_text(json.dumps(params, indent=2) + "\n")
    cmd = [
        *_cli(),
        "run",
        str(HERE / SCRIPTS[model]),
        "--name",
        name,
        "--params",
        str(params_file),
        "--seed",
        str(seed),
        "--tracking_uri",
        center.uri,
    ]
    env = {**os.environ, "COSMIC_PRESET": preset, "COSMIC_SCALE": f"{scale:g}"}
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"retraining {name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    run = next((r for r in center.runs(name) if r.info.start_time >= int(t0 * 1000) - 1000), None)
    if run is None or run.info.status != "FINISHED":
        raise RuntimeError(f"retraining {name}: no finished run found after the command")
    m = run.data.metrics
    correct, n = int(m["test_correct"]), int(m["test_n"])
    lo, hi = wilson_interval(correct, n)
    fp_key = next((k for k in parent.data.tags if k.startswith("data.fingerprint.")), None)
    same_data = fp_key is not None and parent.data.tags.get(fp_key) == run.data.tags.get(fp_key)
    if not same_data:
        raise RuntimeError(
            f"{name}: the retraining's data ({run.data.tags.get(fp_key)}) is not the data the "
            f"group searched on ({parent.data.tags.get(fp_key)}); check COSMIC_PRESET/COSMIC_SCALE"
        )
    pm, pp = parent.data.metrics, parent.data.params
    shown = {k: v for k, v in params.items() if k not in ("evaluate_on", "max_train_samples")}
    return {
        "model": model,
        "preset": preset,
        "group": group,
        "group_run_id": parent.info.run_id,
        "final_run_id": run.info.run_id,
        "best_trial": best["number"],
        "best_val_accuracy": best["values"].get("val_accuracy"),
        "params": shown,
        "test_accuracy": correct / n,
        "test_correct": correct,
        "test_n": n,
        "wilson_low": lo,
        "wilson_high": hi,
        "trials": {
            "budget": int(float(pp.get("num_trials", config.get("num_trials", 0)))),
            "complete": int(pm.get("trials_complete", 0)),
            "pruned": int(pm.get("trials_pruned", 0)),
            "failed": int(pm.get("trials_failed", 0)),
        },
        "group_params": config.get("params", {}),
        "timeout_per_trial": config.get("timeout_per_trial"),
        "group_minutes": pm.get("total_time_s", 0.0) / 60,
        "final_minutes": m.get("duration_s", time.time() - t0) / 60,
        "data_fingerprint": run.data.tags.get(fp_key),
        "group_command": group_command(config, model, preset, scale),
        "final_command": (
            f"COSMIC_PRESET={preset}"
            + (f" COSMIC_SCALE={scale:g}" if scale != 1 else "")
            + f" ml-experiment run {_rel(HERE / SCRIPTS[model])} --name {name} --seed {seed}"
            f" --params {_rel(params_file)}"
        ),
    }


def _budget(row: dict[str, Any]) -> str:
    t = row["trials"]
    model = row["model"]
    thesis_trials, thesis_epochs = THESIS_BUDGET[model]
    parts = [f"{t['budget']} trials"]
    done = f"{t['complete']} done" + (f", {t['pruned']} pruned" if t["pruned"] else "")
    done += f", {t['failed']} failed" if t["failed"] else ""
    gp = row["group_params"]
    if gp.get("max_epochs") is not None:
        parts.append(f"{gp['max_epochs']} epochs")
    if gp.get("max_train_samples") is not None:
        parts.append(f"search on {gp['max_train_samples']} train stations")
    if gp.get("max_boost_round") is not None:
        parts.append(f"<= {gp['max_boost_round']} rounds")
    if model == "svm" and gp.get("max_iter", 1000) != 1000:
        parts.append(f"<= {gp['max_iter']} LinearSVC iterations")
    if row.get("timeout_per_trial"):
        parts.append(f"timeout {row['timeout_per_trial']:g} s per trial")
    thesis = f"{thesis_trials}" + (f" x {thesis_epochs} ep." if thesis_epochs else "")
    reduced = (
        t["budget"] < thesis_trials
        or (thesis_epochs is not None and gp.get("max_epochs", thesis_epochs) < thesis_epochs)
        or gp.get("max_train_samples") is not None
        or gp.get("max_iter", 1000) < 1000
    )
    flag = " **(reduced)**" if reduced else ""
    return f"{', '.join(parts)} ({done}){flag}", thesis


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """RESULTS.md."""
    lines = [
        "# Cosmic-ray primary classification: results",
        "",
        "The analogue of thesis Table 7.13 on the simulated stations of `simulate.py`: for each",
        "model and preset, the best trial of its group, retrained once on the whole training set",
        "and evaluated once on the test set, with the 99 % Wilson score interval. Written by",
        "`final_table.py`; every number below is a run in the knowledge center.",
        "",
        f"Data: `simulate.py` {meta['simulator_version']}, seed 1234, scale {meta['scale']:g} "
        f"({meta['n_train']} training / {meta['n_test']} test stations per preset). "
        f"Machine: {meta['machine']}. Generated {meta['date']}.",
        "",
        "| model | preset | budget used (thesis: trials x epochs) | best validation | "
        "test accuracy | 99 % Wilson interval | thesis test accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        budget, thesis_budget = _budget(r)
        acc, half = THESIS[r["model"]]
        lines.append(
            f"| {LABELS[r['model']]} | `{r['preset']}` | {budget} ({thesis_budget}) | "
            f"{r['best_val_accuracy']:.4f} | **{r['test_accuracy']:.4f}** "
            f"({r['test_correct']}/{r['test_n']}) | [{r['wilson_low']:.4f}, {r['wilson_high']:.4f}] | "
            f"{acc:.4f} ± {half:.4f} |"
        )
    lines += [
        "",
        "Chance is 0.25. The thesis column is its Table 7.13 on the (non-public) Auger simulations;",
        'it is a reference for the ordering, not a target (see README.md, "Two presets").',
        "",
        f"Time: {sum(r['group_minutes'] for r in rows):.0f} min for the {len(rows)} searches "
        f"(one after the other), {sum(r['final_minutes'] for r in rows):.0f} min of retraining "
        f"({meta['parallel']} at a time), on {meta['machine']}.",
        "",
        "## Best configurations",
        "",
        "| model | preset | best trial | parameters (retrained with these) | group time | retraining time |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(r["params"].items()))
        lines.append(
            f"| {LABELS[r['model']]} | `{r['preset']}` | {r['best_trial']} | {p} | "
            f"{r['group_minutes']:.1f} min | {r['final_minutes']:.1f} min |"
        )
    lines += [
        "",
        "## Commands",
        "",
        "From the repository root, after the README's install (the data are simulated on first",
        "use). The searches (one group per model and preset):",
        "",
        "```bash",
        *[r["group_command"] for r in rows],
        "```",
        "",
        "Then this table (it runs the retrainings below and rewrites this file):",
        "",
        "```bash",
        meta["table_command"],
        "```",
        "",
        "which runs, for each model, one tracked retraining on the full training set and one",
        "evaluation on the test set (the parameter files are the best trials' parameters, written",
        "by the table next to this file):",
        "",
        "```bash",
        *[r["final_command"] for r in rows],
        "```",
        "",
        "Knowledge-center runs (`ml-experiment ui`): groups "
        + ", ".join(f"`{r['group']}`" for r in rows)
        + "; retrainings `<group>-final`; this table `"
        + meta["summary_name"]
        + "`.",
        "",
    ]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if not isinstance(v, str) else v


@job
def main(
    presets: list[str] | None = None,
    models: list[str] | None = None,
    group_prefix: str = "cosmic",
    results_path: str | None = None,
    retrain_seed: int = 1234,
    parallel: int = 2,
) -> tuple[dict[str, float], dict[str, str]]:
    import mlflow

    import data as cosmic_data  # this folder is on sys.path, as for `python final_table.py`

    presets = presets or ["physical", "thesis"]
    models = models or list(MODELS)
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {list(MODELS)}")
    from concurrent.futures import ThreadPoolExecutor

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _, scale, _ = cosmic_data.settings()
    center = Center(mlflow.get_tracking_uri())
    out = Path(results_path) if results_path else HERE / "RESULTS.md"
    params_dir = out.resolve().parent / "final_params"

    def one(preset: str, model: str) -> dict[str, Any]:
        row = retrain(center, model, preset, scale, group_prefix, retrain_seed, params_dir)
        print(
            f"final table: {model} on {preset}: test accuracy {row['test_accuracy']:.4f} "
            f"[{row['wilson_low']:.4f}, {row['wilson_high']:.4f}] (99 % Wilson)",
            flush=True,
        )
        return row

    # Each retraining is its own process (one CPU each); `parallel` of them at a time.
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(one, p, m) for p in presets for m in models]
        rows = [f.result() for f in futures]
    import platform

    n_test = rows[0]["test_n"] if rows else 0
    active = mlflow.active_run()
    summary_name = active.info.run_name if active else "cosmic-final-table"
    table_args = []
    if presets != ["physical", "thesis"]:
        table_args.append(f"--params '{json.dumps({'presets': presets})}'")
    meta = {
        "simulator_version": cosmic_data._simulator().SIMULATOR_VERSION,
        "scale": scale,
        "n_train": round(16000 * scale) * 4,
        "n_test": n_test,
        "machine": f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})",
        "date": time.strftime("%Y-%m-%d"),
        "summary_name": summary_name,
        "parallel": max(1, parallel),
        "table_command": (f"COSMIC_SCALE={scale:g} " if scale != 1 else "")
        + "ml-experiment run examples/cosmic_rays/final_table.yaml"
        + (" " + " ".join(table_args) if table_args else ""),
    }
    text = render(rows, meta)
    out.write_text(text)
    tmp = Path(tempfile.mkdtemp(prefix="mlx-final-"))
    (tmp / "results.json").write_text(json.dumps(rows, indent=2, default=str))
    (tmp / "RESULTS.md").write_text(text)
    metrics: dict[str, float] = {}
    for r in rows:
        key = f"{r['preset']}.{r['model']}"
        metrics[f"{key}.test_accuracy"] = r["test_accuracy"]
        metrics[f"{key}.wilson_low"] = r["wilson_low"]
        metrics[f"{key}.wilson_high"] = r["wilson_high"]
        metrics[f"{key}.best_val_accuracy"] = r["best_val_accuracy"]
    print(text)
    return metrics, {
        "RESULTS.md": str(tmp / "RESULTS.md"),
        "results.json": str(tmp / "results.json"),
    }


if __name__ == "__main__":
    main()
