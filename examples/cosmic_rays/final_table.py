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

from results_md import LABELS, LEAKAGE_PNG  # this folder is on sys.path (see main)

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

    def sittings(self, group: str, parent_id: str) -> dict[str, int]:
        """Trials recorded, and how many sittings (at least) the search took.

        The parent run's ``ml_experiment.sittings`` tag counts them (1, +1 per ``--resume``).
        Groups recorded before that tag existed leave two traces: each sitting starts its own
        private Ray, so the trials of a single-machine group carry one Ray node id
        (``ml_experiment.node``) per sitting; and a trial that a stopped sitting left running
        is recorded failed with an ``error`` that starts with ``interrupted`` (re-run on resume;
        it does not count against the budget).
        """
        trials = [
            r
            for r in self.runs(group)
            if r.data.tags.get("mlflow.parentRunId") == parent_id
            and "ml_experiment.trial_number" in r.data.tags
        ]
        interrupted = [r for r in trials if r.data.tags.get("error", "").startswith("interrupted")]
        nodes = {r.data.tags.get("ml_experiment.node") for r in trials} - {None}
        counted = self.client.get_run(parent_id).data.tags.get("ml_experiment.sittings", "")
        return {
            "recorded": len(trials) - len(interrupted),
            "interrupted": len(interrupted),
            "sittings": int(counted)
            if counted.isdigit()
            else max(len(nodes), 2 * bool(interrupted), 1),
        }

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
    split: str = "preset",
) -> dict[str, Any]:
    """Best trial of the group -> one tracked retraining on the full training set, tested once.

    The retraining's parameters are written to ``params_dir/<name>.json``, the file the
    command reads (and the one RESULTS.md's command names). ``split="shower"`` retrains the
    same parameters on the files re-split by shower (``COSMIC_SPLIT=shower``, the leak-free
    counterpart of ``thesis``; run ``<group>-shower-final``): its data differ from the
    search's by design, so its fingerprint must differ, where the others' must match.
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
    name = f"{group}-final" if split == "preset" else f"{group}-{split}-final"
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
    env = {
        **os.environ,
        "COSMIC_PRESET": preset,
        "COSMIC_SCALE": f"{scale:g}",
        "COSMIC_SPLIT": split,
    }
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
    if same_data != (split == "preset"):
        raise RuntimeError(
            f"{name}: the retraining's data ({run.data.tags.get(fp_key)}) "
            + ("is not" if split == "preset" else "is")
            + f" the data the group searched on ({parent.data.tags.get(fp_key)}); check "
            "COSMIC_PRESET/COSMIC_SCALE/COSMIC_SPLIT"
        )
    pm, pp = parent.data.metrics, parent.data.params
    shown = {k: v for k, v in params.items() if k not in ("evaluate_on", "max_train_samples")}
    return {
        "model": model,
        "preset": preset,
        "split": split,
        "name": name,
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
            **center.sittings(group, parent.info.run_id),
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
            + (f" COSMIC_SPLIT={split}" if split != "preset" else "")
            + f" ml-experiment run {_rel(HERE / SCRIPTS[model])} --name {name} --seed {seed}"
            f" --params {_rel(params_file)}"
        ),
    }


def predictions(center: Center, run_id: str) -> dict[str, Any]:
    """The test predictions a retraining logged (``test_predictions.npz``)."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="mlx-final-") as tmp:
        local = center.client.download_artifacts(run_id, "test_predictions.npz", tmp)
        with np.load(local) as z:
            return {k: z[k] if k != "score_kind" else str(z[k]) for k in z.files}


def draw_figures(center: Center, rows: list[dict[str, Any]], folder: Path) -> None:
    """Confusion matrix and ROC figure per row, the leakage side by side (``row['figures']``,
    paths relative to ``folder``)."""
    import plots

    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        pred = predictions(center, r["final_run_id"])
        title = f"{LABELS[r['model']]}, {variant(r)}"
        stem = r["name"].removeprefix(r["group"].split("-")[0] + "-").removesuffix("-final")
        r["figures"] = {"confusion": f"{stem}-confusion.png", "roc": f"{stem}-roc.png"}
        plots.draw_confusion(pred, title, folder / r["figures"]["confusion"])
        r["auc"] = plots.draw_roc(pred, title, folder / r["figures"]["roc"])
    points = [
        (LABELS[r["model"]], variant(r), r["test_accuracy"], r["wilson_low"], r["wilson_high"])
        for r in rows
    ]
    plots.draw_leakage(points, 0.25, folder / LEAKAGE_PNG)


def copy_report(center: Center, row: dict[str, Any], folder: Path) -> list[str]:
    """The group's report PNGs (``report/*.png`` of its parent run) into ``folder``.

    A group run with ``report: false`` has none: its report is made now, from the knowledge
    center, into the same folder (``ml-experiment report <group>`` would write the same).
    """
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()  # another group's plots must not stay beside this one's
    run_id = row["group_run_id"]
    logged = [
        a.path for a in center.client.list_artifacts(run_id, "report") if a.path.endswith(".png")
    ]
    if logged:
        with tempfile.TemporaryDirectory(prefix="mlx-final-") as tmp:
            for path in logged:
                shutil.copy(center.client.download_artifacts(run_id, path, tmp), folder)
    else:
        from ml_experiment.report import build_report

        with tempfile.TemporaryDirectory(prefix="mlx-final-") as tmp:
            build_report(run_id, tracking_uri=center.uri, out_dir=tmp)
            for png in Path(tmp).glob("*.png"):
                shutil.copy(png, folder)
    return sorted(p.name for p in folder.glob("*.png"))


def variant(row: dict[str, Any]) -> str:
    """``physical``, ``thesis`` or ``thesis, grouped by shower``."""
    return row["preset"] + (", grouped by shower" if row["split"] == "shower" else "")


@job
def main(
    presets: list[str] | None = None,
    models: list[str] | None = None,
    grouped_models: list[str] | None = None,
    group_prefix: str = "cosmic",
    results_path: str | None = None,
    figures_dir: str | None = None,
    retrain_seed: int = 1234,
    parallel: int = 2,
) -> tuple[dict[str, float], dict[str, str]]:
    """Retrain every group's best trial, draw the figures, write RESULTS.md.

    Args:
        presets: the presets whose groups are retrained.
        models: the models (groups ``<group_prefix>-<model>-<preset>``).
        grouped_models: the models whose ``thesis`` best parameters are also retrained on
            the split by shower (None: all of ``models``; [] none).
        group_prefix: the groups' name prefix.
        results_path: RESULTS.md's path (None: next to this file).
        figures_dir: the PNGs' folder (None: ``figures/`` next to RESULTS.md).
        retrain_seed: the retrainings' seed.
        parallel: retrainings at a time (one process and CPU each).
    """
    import mlflow
    from results_md import render

    import data as cosmic_data  # this folder is on sys.path, as for `python final_table.py`

    presets = presets or ["physical", "thesis"]
    models = models or list(MODELS)
    grouped = list(models if grouped_models is None else grouped_models)
    unknown = sorted((set(models) | set(grouped)) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {list(MODELS)}")
    from concurrent.futures import ThreadPoolExecutor

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _, scale, _ = cosmic_data.settings()
    center = Center(mlflow.get_tracking_uri())
    out = Path(results_path) if results_path else HERE / "RESULTS.md"
    params_dir = out.resolve().parent / "final_params"
    fig_dir = Path(figures_dir) if figures_dir else out.resolve().parent / "figures"

    def one(preset: str, model: str, split: str) -> dict[str, Any]:
        row = retrain(center, model, preset, scale, group_prefix, retrain_seed, params_dir, split)
        print(
            f"final table: {model} on {variant(row)}: test accuracy {row['test_accuracy']:.4f} "
            f"[{row['wilson_low']:.4f}, {row['wilson_high']:.4f}] (99 % Wilson)",
            flush=True,
        )
        return row

    jobs = [(p, m, "preset") for p in presets for m in models]
    jobs += [("thesis", m, "shower") for m in grouped if "thesis" in presets]
    # Each retraining is its own process (one CPU each); `parallel` of them at a time.
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(one, *j) for j in jobs]
        rows = [f.result() for f in futures]
    rows.sort(
        key=lambda r: (presets.index(r["preset"]), r["split"] != "preset", models.index(r["model"]))
    )
    draw_figures(center, rows, fig_dir)
    reports = {}  # preset -> (row of the best model, its report PNGs)
    for preset in presets:
        best = max((r for r in rows if r["preset"] == preset and r["split"] == "preset"),
                   key=lambda r: r["test_accuracy"])  # fmt: skip
        reports[preset] = (best, copy_report(center, best, fig_dir / f"report-{best['group']}"))
    import shutil

    kept = {f"report-{best['group']}" for best, _ in reports.values()}
    for old in fig_dir.glob(f"report-{group_prefix}-*"):
        if old.name not in kept and old.name.endswith(tuple(presets)):
            shutil.rmtree(old)  # an earlier best model's plots would read as today's
    import platform

    n_test = rows[0]["test_n"] if rows else 0
    active = mlflow.active_run()
    summary_name = active.info.run_name if active else "cosmic-final-table"
    table_args = {}
    if presets != ["physical", "thesis"]:
        table_args["presets"] = presets
    if grouped_models is not None:
        table_args["grouped_models"] = grouped
    meta = {
        "simulator_version": cosmic_data._simulator().SIMULATOR_VERSION,
        "scale": scale,
        "n_train": round(16000 * scale) * 4,
        "n_test": n_test,
        "machine": f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})",
        "date": time.strftime("%Y-%m-%d"),
        "summary_name": summary_name,
        "parallel": max(1, parallel),
        "figures": os.path.relpath(fig_dir, out.resolve().parent),
        "reports": reports,
        "table_command": (f"COSMIC_SCALE={scale:g} " if scale != 1 else "")
        + "ml-experiment run examples/cosmic_rays/final_table.yaml"
        + (f" --params '{json.dumps(table_args)}'" if table_args else ""),
    }
    text = render(rows, meta)
    out.write_text(text)
    tmp = Path(tempfile.mkdtemp(prefix="mlx-final-"))
    (tmp / "results.json").write_text(json.dumps(rows, indent=2, default=str))
    (tmp / "RESULTS.md").write_text(text)
    metrics: dict[str, float] = {}
    for r in rows:
        key = f"{r['preset']}.{r['model']}" + (f".{r['split']}" if r["split"] != "preset" else "")
        metrics[f"{key}.test_accuracy"] = r["test_accuracy"]
        metrics[f"{key}.wilson_low"] = r["wilson_low"]
        metrics[f"{key}.wilson_high"] = r["wilson_high"]
        metrics[f"{key}.best_val_accuracy"] = r["best_val_accuracy"]
        for cls, auc in r["auc"].items():
            metrics[f"{key}.auc_{cls}"] = auc
    print(text)
    return metrics, {
        "RESULTS.md": str(tmp / "RESULTS.md"),
        "results.json": str(tmp / "results.json"),
        "figures": str(fig_dir),
    }


if __name__ == "__main__":
    main()
