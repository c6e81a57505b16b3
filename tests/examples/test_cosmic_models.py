"""The cosmic-ray models (examples/cosmic_rays): building blocks, and the whole study end to end.

The end-to-end test runs the five groups and the final table through the installed command
on a tiny budget (the simulator at scale 0.02, two trials per group, two epochs), in a
temporary working directory with its own knowledge center and data folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import EXAMPLES, all_runs, artifact_paths, client, run_cli
from tests.examples.conftest import load_example, without_report

COSMIC = EXAMPLES / "cosmic_rays"
MODELS = ("svm", "xgboost", "autoencoder_v1", "autoencoder_v2", "vae")
# The small-budget overrides every job file accepts (the README documents the same ones).
SMALL = {
    "svm": {"max_train_samples": 600},
    "xgboost": {"max_boost_round": 8},
    "autoencoder_v1": {"max_epochs": 2},
    "autoencoder_v2": {"max_epochs": 2},
    "vae": {"max_epochs": 2},
}


def _load(name: str, filename: str) -> Any:
    """A cosmic-ray example module (final_table.py imports results_md beside it)."""
    return load_example(COSMIC, filename, f"cosmic_rays_{name}")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cosmic-data")


def _env(data_dir: Path, preset: str = "physical") -> dict[str, str]:
    return {"COSMIC_DATA_DIR": str(data_dir), "COSMIC_SCALE": "0.02", "COSMIC_PRESET": preset}


# ------------------------------------------------------------------------------------------
# building blocks (in-process, seconds)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["physical", "thesis"])
def test_loaders_split_and_scale_without_leaks(
    preset: str, small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _load("data", "data.py")
    for key, value in _env(small_data, preset).items():
        monkeypatch.setenv(key, value)
    d = data.PerClassLoader.load_data()
    assert d["preset"] == preset and d["scale"] == 0.02
    n_train, n_val = d["y_train"].size, d["y_val"].size
    assert n_train + n_val == d["y_full"].size == 4 * 320
    assert 0.15 < n_val / (n_train + n_val) < 0.25
    # the scaler is fitted on the training part only: exactly standard there, not elsewhere
    assert np.allclose(d["X_train"].mean(axis=0), 0, atol=1e-5)
    assert np.allclose(d["X_train"].std(axis=0), 1, atol=1e-3)
    assert not np.allclose(d["X_val"].mean(axis=0), 0, atol=1e-5)
    assert np.allclose(d["X_full"].mean(axis=0), 0, atol=1e-5)
    assert not np.allclose(d["X_test"].mean(axis=0), 0, atol=1e-5)
    # the per-class arrays are the training part, split by label
    assert [x.shape[0] for x in d["X_train_by_class"]] == list(np.bincount(d["y_train"]))
    assert np.array_equal(d["X_train_by_class"][2], d["X_train"][d["y_train"] == 2])
    # physical: validation grouped by shower; thesis: the thesis's random station split
    sim = data._simulator()
    root = data.dataset_dir(preset, 0.02, small_data)
    showers = sim.read_split(root, "train")["shower_id"].to_numpy()
    tr, va = data.validation_split(preset, d["y_full"], showers)
    shared = np.intersect1d(showers[tr], showers[va]).size
    assert (shared == 0) if preset == "physical" else (shared > 0)


def test_wilson_interval_matches_the_formula() -> None:
    ft = _load("final_table", "final_table.py")
    lo, hi = ft.wilson_interval(640, 1000, 0.99)
    assert lo == pytest.approx(0.6001, abs=1e-4) and hi == pytest.approx(0.6780, abs=1e-4)
    lo, hi = ft.wilson_interval(0, 50, 0.99)
    assert lo == 0.0 and 0 < hi < 0.15
    # the thesis's XGBoost half-width (0.0029) fits a test set of ~80,000 stations
    lo, hi = ft.wilson_interval(70815, 80000, 0.99)
    assert (hi - lo) / 2 == pytest.approx(0.0029, abs=2e-4)


def test_roc_and_confusion_match_their_definitions() -> None:
    fig = _load("plots", "plots.py")
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400).astype(bool)
    score = np.round(rng.normal(size=400) + truth, 1)  # ties on purpose
    fpr, tpr, auc = fig.roc_curve(truth, score)
    # the Mann-Whitney probability, ties counted one half
    pos, neg = score[truth][:, None], score[~truth][None, :]
    assert auc == pytest.approx(float((pos > neg).mean() + 0.5 * (pos == neg).mean()))
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    m = fig.confusion(np.array([0, 1, 1, 3]), np.array([0, 1, 2, 3]))
    assert m.tolist() == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]]


def test_group_state_and_sittings_read_the_knowledge_center(tmp_path: Path) -> None:
    """What run_study.sh and the table's budget column read: a group's parent run status, and
    its sittings (the parent's tag; for older records, one Ray node id per sitting)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    state = _load("group_state", "group_state.py").state
    ft = _load("final_table", "final_table.py")
    c = MlflowClient(uri)
    assert state("cosmic-xgboost-thesis", uri) == "absent"
    exp = c.create_experiment("cosmic-xgboost-thesis", str(tmp_path / "art"))
    parent = c.create_run(exp, tags={"ml_experiment.kind": "group"}).info.run_id
    center = ft.Center(uri)

    def trial(number: int, **tags: str) -> None:
        tags = {"mlflow.parentRunId": parent, "ml_experiment.trial_number": str(number), **tags}
        c.set_terminated(c.create_run(exp, tags=tags).info.run_id)

    for number in range(2):
        trial(number, **{"ml_experiment.node": "a"})
    assert center.sittings("cosmic-xgboost-thesis", parent) == {
        "recorded": 2,
        "interrupted": 0,
        "sittings": 1,
    }
    # what a resume writes for a trial the stopped sitting left running (sweeper.recover)
    trial(2, error="interrupted: the driver stopped while this trial ran; re-queued")
    c.set_terminated(parent, "KILLED")  # the first sitting was stopped
    assert state("cosmic-xgboost-thesis", uri) == "unfinished"
    assert center.sittings("cosmic-xgboost-thesis", parent)["sittings"] == 2
    for number in range(3, 6):
        trial(number, **{"ml_experiment.node": "b"})
    assert center.sittings("cosmic-xgboost-thesis", parent) == {
        "recorded": 5,
        "interrupted": 1,
        "sittings": 2,
    }
    c.update_run(parent, "FINISHED")
    assert state("cosmic-xgboost-thesis", uri) == "finished"
    c.set_tag(parent, "ml_experiment.sittings", "3")  # the engine's own count wins
    assert center.sittings("cosmic-xgboost-thesis", parent)["sittings"] == 3


def test_autoencoder_building_blocks() -> None:
    import torch  # a test dependency: a broken install fails here, never skips

    ae = _load("autoencoders", "autoencoders.py")
    torch.manual_seed(0)
    x = torch.randn(4, 8, 9)
    tied = ae.StackedAutoencoders(
        4, 9, [5, 3], tied_weights=True, ps=0.2, unit_norm_constraint=True
    )
    free = ae.StackedAutoencoders(4, 9, [5, 3], tied_weights=False)
    assert tied(x).shape == free(x).shape == (4, 8, 9)
    n_tied = sum(p.numel() for p in tied.parameters())
    n_free = sum(p.numel() for p in free.parameters())
    assert n_free - n_tied == 4 * (9 * 5 + 5 * 3)  # the decoder's own weights
    for w in tied.enc_w:  # UnitNorm: each unit's incoming weights have length 1
        assert torch.allclose(w.norm(dim=1), torch.ones(4, w.shape[2]), atol=1e-5)
    ortho = ae.StackedAutoencoders(1, 9, [3], weight_orthogonality=True)
    with torch.no_grad():
        ortho.enc_w[0].copy_(torch.eye(9)[:, :3].unsqueeze(0))
    assert float(ortho.penalty().detach()) == pytest.approx(0.0, abs=1e-6)
    assert float(free.penalty()) == 0.0
    # the classes are independent: class 0's loss moves only class 0's weights
    free.zero_grad()
    (free(x)[0] - x[0]).square().mean().backward()
    grad = free.enc_w[0].grad
    assert grad[0].abs().sum() > 0 and float(grad[1:].abs().sum()) == 0.0
    vae = ae.VariationalAutoencoders(4, 9, 6, 2, activation="selu")
    assert torch.isfinite(vae.reconstruction_loss(x)) and vae.errors(x[0]).shape == (8, 4)


def test_reconstruction_classifier_learns_separable_classes() -> None:
    import torch

    ae = _load("autoencoders", "autoencoders.py")
    torch.manual_seed(0)  # the weights' start, not whatever earlier tests left in torch's RNG
    rng = np.random.default_rng(0)
    # two classes living on different 2-d subspaces of R^6
    bases = [rng.normal(size=(2, 6)) for _ in range(2)]
    by_class = [rng.normal(size=(400, 2)) @ b for b in bases]
    X_eval = np.concatenate([rng.normal(size=(100, 2)) @ b for b in bases])
    y_eval = np.repeat([0, 1], 100)
    model = ae.StackedAutoencoders(2, 6, [2], activation="linear")
    gen = ae.train_and_classify(
        model, by_class, X_eval, y_eval, epochs=30, batch_size=64, lr=0.01,
        metrics_of=lambda y, p: {"val_accuracy": float((y == p).mean())},
    )  # fmt: skip
    steps = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        final = stop.value
    assert len(steps) == 30 and "val_accuracy" in steps[0]
    assert final["val_accuracy"] > 0.95


# ------------------------------------------------------------------------------------------
# end to end through the CLI
# ------------------------------------------------------------------------------------------
def _parent_and_children(c: Any, name: str) -> tuple[Any, list[Any]]:
    runs = all_runs(c, name)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    return parents[0], [r for r in runs if "mlflow.parentRunId" in r.data.tags]


PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.timeout(1200)  # ~100 s alone; ~575 s measured at load average 7-9 on 2 cores
def test_five_models_and_the_final_table_through_the_cli(tmp_path: Path) -> None:
    env = _env(tmp_path / "data", "thesis")
    for model in MODELS:
        name = f"cosmic-{model}-thesis"
        proc = run_cli(
            "run", *without_report(COSMIC / f"{model}.yaml", tmp_path), "--name", name,
            "--num_trials", "2",
            "--params", json.dumps(SMALL[model]), cwd=tmp_path, env=env,
        )  # fmt: skip
        assert proc.returncode == 0, f"{model}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert not (tmp_path / "reports").exists()  # the job files above were the ones that ran
    c = client(tmp_path)
    for model in MODELS:
        parent, children = _parent_and_children(c, f"cosmic-{model}-thesis")
        assert parent.info.status == "FINISHED"
        assert 0.0 <= parent.data.metrics["best_val_accuracy"] <= 1.0
        assert parent.data.metrics["trials_complete"] == 2
        assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
        assert any(k.startswith("data.fingerprint.") for k in parent.data.tags)
        if model.startswith(("autoencoder", "vae")):  # one step per epoch
            history = c.get_metric_history(children[0].info.run_id, "val_accuracy")
            assert len(history) == 2

    results = tmp_path / "RESULTS.md"
    # XGBoost's grouped-by-shower row only: one retraining more, not five
    params = {"presets": ["thesis"], "results_path": str(results), "grouped_models": ["xgboost"]}
    proc = run_cli(
        "run", str(COSMIC / "final_table.yaml"), "--params", json.dumps(params),
        cwd=tmp_path, env={**env, "COSMIC_PRESET": ""},
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    text = results.read_text()
    for label in ("SVM", "XGBoost", "Autoencoder v1", "Autoencoder v2", "VAE"):
        assert re.search(
            rf"\| {label}[^|]* \| `thesis` \| 2 of 2 trials \(2 done\), .*one sitting", text
        )
    assert "| XGBoost | `thesis`, grouped by shower | the best parameters of" in text
    assert "99 % Wilson" in text and "ml-experiment run examples/cosmic_rays/svm.yaml" in text
    assert "COSMIC_SPLIT=shower ml-experiment run examples/cosmic_rays/xgboost_model.py" in text
    # every figure RESULTS.md links is a PNG in figures/ beside it, and each row links two
    links = re.findall(r"\]\((figures/[^)]+\.png)\)", text)
    assert len([lk for lk in links if lk.endswith(("-confusion.png", "-roc.png"))]) == 2 * 6
    assert "figures/leakage.png" in links
    reports = [lk for lk in links if "/report-cosmic-" in lk]
    assert reports and any(lk.endswith("/history.png") for lk in reports)
    for link in links:
        assert (tmp_path / link).read_bytes()[:8] == PNG, link
    for model in MODELS:
        (final,) = all_runs(c, f"cosmic-{model}-thesis-final")
        m = final.data.metrics
        assert final.info.status == "FINISHED" and m["test_n"] == 4 * 80
        assert 0.0 <= m["test_accuracy"] <= 1.0 and "val_accuracy" not in m
        assert final.data.params["evaluate_on"] == "test"
        assert "test_predictions.npz" in artifact_paths(c, final.info.run_id)
    (grouped,) = all_runs(c, "cosmic-xgboost-thesis-shower-final")
    assert grouped.info.status == "FINISHED" and grouped.data.metrics["test_n"] != 4 * 80
    (summary,) = all_runs(c, "cosmic-final-table")
    assert summary.info.status == "FINISHED"
    for key in [f"thesis.{model}" for model in MODELS] + ["thesis.xgboost.shower"]:
        lo, hi = (summary.data.metrics[f"{key}.wilson_{end}"] for end in ("low", "high"))
        assert lo <= summary.data.metrics[f"{key}.test_accuracy"] <= hi
        assert 0.0 <= summary.data.metrics[f"{key}.auc_iron"] <= 1.0
    assert {"RESULTS.md", "results.json", "figures/leakage.png"} <= set(
        artifact_paths(c, summary.info.run_id)
    )
