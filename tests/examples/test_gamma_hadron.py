"""The MAGIC gamma/hadron example (examples/gamma_hadron): loader, and both groups + final table."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import EXAMPLES, all_runs, client, run_cli
from tests.examples.conftest import load_example, without_report

GAMMA = EXAMPLES / "gamma_hadron"


def _magic() -> Any:
    return load_example(GAMMA, "magic.py", "gamma_hadron_magic")  # imports data_loading


def test_readme_links_plots_the_report_draws() -> None:
    from ml_experiment.report._build import _GROUP_PLOTS

    drawn = {f"figures/{key}.png" for key, *_ in _GROUP_PLOTS}
    linked = set(re.findall(r"\]\((figures/[^)]+\.png)\)", (GAMMA / "README.md").read_text()))
    assert "figures/history.png" in linked and linked <= drawn, linked - drawn


def test_magic_loader_splits_stratified_and_scales_on_training_data() -> None:
    d = _magic().MagicLoader.load_data()
    n = {k: d[k].shape[0] for k in ("X_train", "X_val", "X_test", "X_full")}
    assert n["X_train"] + n["X_val"] == n["X_full"] and n["X_full"] + n["X_test"] == 19020
    for y in (d["y_train"], d["y_val"], d["y_test"]):
        assert abs(y.mean() - 12332 / 19020) < 0.01  # stratified
    assert np.allclose(d["X_train"].mean(axis=0), 0, atol=1e-4)
    assert not np.allclose(d["X_val"].mean(axis=0), 0, atol=1e-4)
    assert np.allclose(d["X_full"].mean(axis=0), 0, atol=1e-4)


@pytest.mark.slow
def test_magic_groups_and_final_table_through_the_cli(tmp_path: Path) -> None:
    small = {"xgboost": {"max_boost_round": 10}, "svm": {"n_components": 20}}
    for model, params in small.items():
        proc = run_cli(
            "run", *without_report(GAMMA / f"{model}.yaml", tmp_path), "--num_trials", "2",
            "--params", json.dumps(params), cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, f"{model}:\n{proc.stderr[-3000:]}"
    assert not (tmp_path / "reports").exists()  # the job files above were the ones that ran
    results = tmp_path / "RESULTS.md"
    proc = run_cli(
        "run", str(GAMMA / "final_table.yaml"),
        "--params", json.dumps({"results_path": str(results)}), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = results.read_text()
    assert "| xgboost |" in text and "| svm |" in text
    # the best group's report PNGs, beside RESULTS.md and linked from it
    links = re.findall(r"\]\((figures/[^)]+\.png)\)", text)
    assert "figures/history.png" in links
    assert sorted(links) == sorted(f"figures/{p.name}" for p in (tmp_path / "figures").iterdir())
    for link in links:
        assert (tmp_path / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
    c = client(tmp_path)
    for model in small:
        (parent,) = [
            r for r in all_runs(c, f"magic-{model}") if "mlflow.parentRunId" not in r.data.tags
        ]
        assert parent.info.status == "FINISHED"
        assert 0.5 <= parent.data.metrics["best_val_accuracy"] <= 1.0
        (final,) = all_runs(c, f"magic-{model}-final")
        assert final.data.metrics["test_n"] == 3804
        assert 0.5 <= final.data.metrics["test_accuracy"] <= 1.0
    (summary,) = all_runs(c, "magic-final-table")
    assert summary.info.status == "FINISHED" and "xgboost.wilson_low" in summary.data.metrics
