"""RESULTS.md of the cosmic-ray study: the page ``final_table.py`` writes from its rows.

Kept apart from the retraining logic so the page's wording can change without touching it.
"""

from __future__ import annotations

import json
from typing import Any

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
LEAKAGE_PNG = "leakage.png"  # the same models on both splits, in the figures folder


def _budget(row: dict[str, Any]) -> tuple[str, str]:
    """(the budget the row's group used, the thesis's budget)."""
    t = row["trials"]
    model = row["model"]
    thesis_trials, thesis_epochs = THESIS_BUDGET[model]
    thesis = f"{thesis_trials}" + (f" x {thesis_epochs} ep." if thesis_epochs else "")
    if row["split"] != "preset":
        return f"the best parameters of the `{row['preset']}` search above", thesis
    done = f"{t['complete']} done" + (f", {t['pruned']} pruned" if t["pruned"] else "")
    done += f", {t['failed']} failed" if t["failed"] else ""
    parts = [f"{t['recorded']} of {t['budget']} trials ({done})"]
    gp = row["group_params"]
    if gp.get("max_epochs") is not None:
        parts.append(f"{gp['max_epochs']} epochs")
    parts.append(
        f"search on {gp['max_train_samples']} train stations"
        if gp.get("max_train_samples") is not None
        else "full training set"
    )
    if gp.get("max_boost_round") is not None:
        parts.append(f"<= {gp['max_boost_round']} rounds")
    if model == "svm" and gp.get("max_iter", 1000) != 1000:
        parts.append(f"<= {gp['max_iter']} LinearSVC iterations")
    if row.get("timeout_per_trial"):
        parts.append(f"timeout {row['timeout_per_trial']:g} s per trial")
    if t["sittings"] > 1:
        lost = t["interrupted"]
        parts.append(
            f"resumed, at least {t['sittings']} sittings"
            + (f" ({lost} interrupted trials re-run)" if lost else "")
        )
    else:
        parts.append("one sitting")
    reduced = (
        t["recorded"] < thesis_trials
        or (thesis_epochs is not None and gp.get("max_epochs", thesis_epochs) < thesis_epochs)
        or gp.get("max_train_samples") is not None
        or gp.get("max_iter", 1000) < 1000
    )
    flag = " **(reduced)**" if reduced else ""
    return f"{', '.join(parts)}{flag}", thesis


def _figure_links(row: dict[str, Any], folder: str) -> str:
    f = row["figures"]
    return f"[confusion]({folder}/{f['confusion']}), [ROC]({folder}/{f['roc']})"


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """RESULTS.md."""
    fig = meta["figures"]
    lines = [
        "# Cosmic-ray primary classification: results",
        "",
        "The analogue of thesis Table 7.13 on the simulated stations of `simulate.py`: for each",
        "model and preset, the best trial of its group, retrained once on the whole training set",
        "and evaluated once on the test set, with the 99 % Wilson score interval. Written by",
        "`final_table.py`; every number and figure below is a run in the knowledge center.",
        "",
        f"Data: `simulate.py` {meta['simulator_version']}, seed 1234, scale {meta['scale']:g} "
        f"({meta['n_train']} training / {meta['n_test']} test stations per preset). "
        f"Machine: {meta['machine']}. Generated {meta['date']}.",
        "",
        "Rows `thesis, grouped by shower`: the same best parameters as the `thesis` row above",
        "them, retrained on the `thesis` stations pooled and re-split by shower",
        "(`COSMIC_SPLIT=shower`: no shower has stations on both sides), so the difference",
        "between the two rows is what the random station split leaks.",
        "",
        "| model | data | budget used (the thesis's: trials x epochs) | best validation | "
        "test accuracy | 99 % Wilson interval | thesis test accuracy | figures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        budget, thesis_budget = _budget(r)
        acc, half = THESIS[r["model"]]
        data = f"`{r['preset']}`" + (", grouped by shower" if r["split"] != "preset" else "")
        val = f"{r['best_val_accuracy']:.4f}" if r["split"] == "preset" else "(not searched)"
        lines.append(
            f"| {LABELS[r['model']]} | {data} | {budget} (thesis: {thesis_budget}) | "
            f"{val} | **{r['test_accuracy']:.4f}** "
            f"({r['test_correct']}/{r['test_n']}) | [{r['wilson_low']:.4f}, {r['wilson_high']:.4f}] | "
            f"{acc:.4f} ± {half:.4f} | {_figure_links(r, fig)} |"
        )
    searched = [r for r in rows if r["split"] == "preset"]
    lines += [
        "",
        "Chance is 0.25. The thesis column is its Table 7.13 on the (non-public) Auger simulations;",
        'it is a reference for the ordering, not a target (see README.md, "Two presets").',
        "A row's budget counts the trials its group recorded; `resumed, at least N sittings`",
        "means the search was continued with `--resume` (the group's `ml_experiment.sittings`",
        "tag, or for older records its trials' Ray sessions; see README.md, Budgets).",
        "",
        f"Time: {sum(r['group_minutes'] for r in searched):.0f} min for the {len(searched)} "
        f"searches (one after the other), {sum(r['final_minutes'] for r in rows):.0f} min of "
        f"retraining ({meta['parallel']} at a time), on {meta['machine']}.",
        "",
        "## Figures",
        "",
        "The test set of each row: confusion matrix (counts and row-normalised) and one-vs-rest",
        "ROC curves with their AUC (linked in the table). The leakage, side by side:",
        "",
        f"![test accuracy per model on each split]({fig}/{LEAKAGE_PNG})",
        "",
    ]
    for preset, (best, pngs) in meta["reports"].items():
        folder = f"{fig}/report-{best['group']}"
        lines += [
            f"The search plots of the best model on `{preset}` ({LABELS[best['model']]}, group "
            f"`{best['group']}`; its group report's PNGs): "
            + ", ".join(f"[{p.removesuffix('.png')}]({folder}/{p})" for p in pngs)
            + ".",
            "",
        ]
    lines += [
        "## Best configurations",
        "",
        "| model | preset | best trial | parameters (retrained with these) | group time | retraining time |",
        "|---|---|---|---|---|---|",
    ]
    for r in searched:
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
        "use). The searches (one group per model and preset; an interrupted one continues with",
        "the same command and `--resume`):",
        "",
        "```bash",
        *[r["group_command"] for r in searched],
        "```",
        "",
        "Then this table (it runs the retrainings below and rewrites this file and the figures):",
        "",
        "```bash",
        meta["table_command"],
        "```",
        "",
        "which runs, for each row, one tracked retraining on the full training set and one",
        "evaluation on the test set (the parameter files are the best trials' parameters, written",
        "by the table next to this file):",
        "",
        "```bash",
        *[r["final_command"] for r in rows],
        "```",
        "",
        "Knowledge-center runs (`ml-experiment ui`): groups "
        + ", ".join(f"`{r['group']}`" for r in searched)
        + "; retrainings `<group>-final` and `<group>-shower-final`; this table `"
        + meta["summary_name"]
        + "`.",
        "",
    ]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if not isinstance(v, str) else v
