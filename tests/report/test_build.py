"""build_report on synthetic groups and runs (real MLflow SQLite store, real journal study)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.report.conftest import Synth, synth_group

from ml_experiment.exceptions import ConfigError
from ml_experiment.report import build_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GROUP_PLOTS = ["history", "importances", "parallel", "slice", "contour", "intermediate", "timeline"]


def facts(index: Path) -> dict[str, Any]:
    text = index.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="report-facts">(.*?)</script>', text)
    assert found, "the page carries its facts"
    return json.loads(found.group(1).replace("<\\/", "</"))


@pytest.fixture(scope="module")
def built(kc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Synth, Path]:
    synth = synth_group(kc_dir, name="main", n=14)
    out = tmp_path_factory.mktemp("report")
    index = build_report(synth.parent_run_id, tracking_uri=synth.uri, out_dir=out, log_to_run=True)
    return synth, index


def test_group_report_has_every_plot_and_png(built: tuple[Synth, Path]) -> None:
    synth, index = built
    f = facts(index)
    assert f["kind"] == "group" and f["parent_run_id"] == synth.parent_run_id
    assert f["trials"] == 14
    assert sum(f["counts"].values()) == 14
    assert [p.removeprefix("plot-").removesuffix("-0") for p in f["plots"]] == GROUP_PLOTS
    assert sorted(f["pngs"]) == sorted(f"{k}.png" for k in GROUP_PLOTS)
    for png in f["pngs"]:
        data = (index.parent / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, png


def test_group_report_is_self_contained(built: tuple[Synth, Path]) -> None:
    _, index = built
    from plotly.offline import get_plotlyjs

    text = index.read_text(encoding="utf-8")
    library = get_plotlyjs()
    assert text.count(library) == 1  # the library itself is inline, once
    rest = text.replace(library, "")
    assert "cdn.plot.ly" not in rest and "cdn.jsdelivr" not in rest
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", rest)
    # the only addresses outside plotly.js are the links to the MLflow UI
    assert set(re.findall(r"https?://[^/'\"]+", rest)) == {"http://127.0.0.1:5000"}
    assert "default-src 'none'" in text  # the browser refuses any fetch


def test_trial_table_rows_links_and_failure_reasons(built: tuple[Synth, Path]) -> None:
    synth, index = built
    text = index.read_text(encoding="utf-8")
    table = text[text.index('<table id="trials">') :]
    rows = re.findall(r"<tr><td class='num'>(\d+)</td>", table)
    assert [int(r) for r in rows] == list(range(14))
    from mlflow.tracking import MlflowClient

    exp_id = MlflowClient(synth.uri).get_run(synth.parent_run_id).info.experiment_id
    for run_id in synth.trial_runs.values():
        assert f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs/{run_id}" in table
    assert "timed out: ran longer than timeout_per_trial" in table
    assert "ValueError: depth too large for the data" in table
    assert 'id="failures"' in text


def test_report_is_logged_to_the_parent_run(built: tuple[Synth, Path]) -> None:
    synth, index = built
    from mlflow.tracking import MlflowClient

    names = {a.path for a in MlflowClient(synth.uri).list_artifacts(synth.parent_run_id, "report")}
    assert "report/index.html" in names
    assert {f"report/{p}" for p in facts(index)["pngs"]} <= names


def test_group_name_means_its_latest_parent_run(built: tuple[Synth, Path]) -> None:
    from mlflow.tracking import MlflowClient

    from ml_experiment.report._load import resolve_run

    synth, _ = built
    run = resolve_run(MlflowClient(synth.uri), synth.name, synth.uri)
    assert run.info.run_id == synth.parent_run_id


def test_unknown_run_or_name_is_bad_input_and_writes_nothing(
    built: tuple[Synth, Path], tmp_path: Path
) -> None:
    synth, _ = built
    with pytest.raises(ConfigError, match="no run id or group named 'nope'"):
        build_report("nope", tracking_uri=synth.uri, out_dir=tmp_path / "x")
    with pytest.raises(ConfigError, match="no run id or group named"):
        build_report("0" * 32, tracking_uri=synth.uri, out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_missing_knowledge_center_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no knowledge center"):
        build_report("g", tracking_uri=f"sqlite:///{tmp_path / 'none.db'}", out_dir=tmp_path / "o")
    assert not (tmp_path / "none.db").exists()


def test_without_the_study_the_trials_come_from_mlflow(kc_dir: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    synth = synth_group(kc_dir, name="nostudy", n=10, seed=3)
    # e.g. a knowledge center copied without its journal
    MlflowClient(synth.uri).set_tag(
        synth.parent_run_id, "ml_experiment.study_storage", str(tmp_path / "gone.journal")
    )
    index = build_report(synth.parent_run_id, tracking_uri=synth.uri, out_dir=tmp_path / "o")
    text = index.read_text(encoding="utf-8")
    assert "rebuilt from the MLflow child runs" in text
    f = facts(index)
    assert f["trials"] == 10
    # learning curves from the metric histories, importances from the logged params
    assert "plot-intermediate-0" in f["plots"] and "plot-importances-0" in f["plots"]


def test_multi_objective_group_draws_a_pareto_front(kc_dir: Path, tmp_path: Path) -> None:
    objectives = (("acc", "maximize"), ("cost", "minimize"))
    synth = synth_group(kc_dir, name="multi", n=12, objectives=objectives)
    index = build_report(synth.parent_run_id, tracking_uri=synth.uri, out_dir=tmp_path / "o")
    f = facts(index)
    assert "plot-pareto-0" in f["plots"] and "pareto.png" in f["pngs"]
    assert {"plot-history-0", "plot-history-1"} <= set(f["plots"])  # one per objective


def test_large_groups_are_sampled_and_say_so(
    kc_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml_experiment.report import _context, _rebuild

    monkeypatch.setattr(_context, "MAX_POINTS", 6)
    monkeypatch.setattr(_context, "MAX_CURVES", 4)
    monkeypatch.setattr(_rebuild, "MAX_CURVES", 4)
    synth = synth_group(kc_dir, name="large", n=16, seed=5)
    index = build_report(synth.parent_run_id, tracking_uri=synth.uri, out_dir=tmp_path / "o")
    text = index.read_text(encoding="utf-8")
    assert re.search(r"6 of 1\d finished trials drawn", text)
    assert re.search(r"4 of 1\d learning curves drawn", text)


def test_experiment_report_has_curves_and_environment(kc_dir: Path, tmp_path: Path) -> None:
    from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

    tracker = MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{kc_dir / 'mlruns.db'}"))
    run_id = tracker.create_run(
        "exp",
        tags={
            "ml_experiment.kind": "experiment",
            "env.python": "3.11.7",
            "hw.cpu_count": "2",
            "git.dirty": "false",
        },
    )
    tracker.log(
        run_id,
        params={"lr": 0.1},
        metrics={"final": 0.9},
        steps=[(i, {"loss": 1 / (i + 1), "acc": i / 10}) for i in range(5)],
    )
    tracker.end_run(run_id)
    index = build_report(run_id, tracking_uri=tracker.kc.tracking_uri, out_dir=tmp_path / "o")
    text = index.read_text(encoding="utf-8")
    f = facts(index)
    assert f["kind"] == "experiment" and len(f["plots"]) == 2  # loss and acc have steps
    assert all((index.parent / p).read_bytes().startswith(PNG_MAGIC) for p in f["pngs"])
    for shown in ("env.python", "3.11.7", "hw.cpu_count", "git.dirty", "Metric: loss"):
        assert shown in text


def test_a_group_without_trials_still_gets_a_page(kc_dir: Path, tmp_path: Path) -> None:
    from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

    tracker = MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{kc_dir / 'mlruns.db'}"))
    parent = tracker.create_run(
        "empty",
        run_name="empty",
        tags={"ml_experiment.kind": "group", "ml_experiment.study": "empty"},
    )
    tracker.log(parent, params={"metric": "acc (maximize)"})
    # the group driver passes its own client (and logs the report to the parent run)
    index = build_report(parent, client=tracker.client, out_dir=tmp_path / "o", log_to_run=True)
    text = index.read_text(encoding="utf-8")
    assert facts(index)["trials"] == 0 and facts(index)["plots"] == []
    assert [a.path for a in tracker.client.list_artifacts(parent, "report")] == [
        "report/index.html"
    ]
    assert "nothing to draw" in text and "none complete" in text


def test_a_group_name_finds_its_parent_behind_many_newer_trials(
    kc_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trials start after their parent: by name, the parent is found all the same."""
    import time

    from mlflow.tracking import MlflowClient

    from ml_experiment.report import _load, _rebuild
    from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

    tracker = MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{kc_dir / 'mlruns.db'}"))
    uri = tracker.kc.tracking_uri
    for kind in ("group", "experiment"):
        name = f"newer-{kind}"
        parent = tracker.create_run(name, run_name=name, tags={"ml_experiment.kind": kind})
        for i in range(4):
            tracker.record_run(
                name,
                run_name=f"trial-{i}",
                status="FINISHED",
                start_time=time.time() + 10 + i,
                end_time=time.time() + 11 + i,
                tags={"ml_experiment.trial_number": i},
                parent_run_id=parent,
                params={"layers": [3, 10 + i]},
            )
        monkeypatch.setattr(_load, "_SCAN_PAGE", 2)  # the parent is on the third page
        assert _load.resolve_run(MlflowClient(uri), name, uri).info.run_id == parent
    # a list parameter searched position by position shows one column per position
    flat = {"layers": "[3, 12]"}
    assert _rebuild.flat_value(flat, "layers.1") == "12" and _rebuild.flat_value(flat, "x") is None


def test_the_report_is_built_with_the_collector_off_and_it_is_on_after(
    kc_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No user code runs in a report: Python's collector rests while it is built."""
    import gc

    import ml_experiment.report._build as build

    seen: list[bool] = []
    agg = build._use_agg
    monkeypatch.setattr(build, "_use_agg", lambda: (seen.append(gc.isenabled()), agg())[1])
    synth = synth_group(kc_dir, name="collector", n=4, seed=5)
    gc.enable()
    build_report(synth.parent_run_id, tracking_uri=synth.uri, out_dir=tmp_path / "o")
    assert seen == [False] and gc.isenabled()
