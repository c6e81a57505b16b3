"""What a person sees, in a real browser: the report from a file, offline, and the MLflow UI.

Playwright drives Debian's Chromium (scripts/install-test-system-deps.sh) through
`executable_path`; Playwright's own browser download is never used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.report.conftest import synth_group
from tests.services import free_port

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("ML_EXPERIMENT_SCREENSHOTS", "/tmp/team/screenshots"))

# Per plot: its traces, how many data points they carry, and how many marks were drawn.
PLOT_STATE_JS = """
() => [...document.querySelectorAll('[data-report-plot]')].map(box => {
  const gd = box.querySelector('.js-plotly-plot');
  if (!gd || !gd._fullData) return {id: box.dataset.reportPlot, rendered: false};
  const size = a => (a && a.length) || 0;
  const points = gd._fullData.filter(t => t.visible !== false).reduce((n, t) =>
      n + Math.max(size(t.x), size(t.y), size(t.z), size(t.dimensions)), 0);
  const marks = gd.querySelectorAll(
      '.trace path, .trace .point, .trace image, .bars path, .contour path').length;
  return {id: box.dataset.reportPlot, rendered: true, traces: gd._fullData.length,
          points, marks, width: gd.getBoundingClientRect().width};
})
"""


def chromium_path() -> str | None:
    """Debian's chromium (scripts/install-test-system-deps.sh), or ML_EXPERIMENT_CHROMIUM."""
    for candidate in (
        os.environ.get("ML_EXPERIMENT_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        "/usr/bin/chromium",
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'"
    )
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium found: run scripts/install-test-system-deps.sh (Debian chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def keep_screenshot(page: Any, path: Path) -> Path:
    """Save a full-page screenshot with the test's output and a copy for people to look at."""
    page.screenshot(path=str(path), full_page=True)
    try:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENSHOTS / path.name)
    except OSError:  # the shared folder is a convenience; the test output has the file
        pass
    return path


class Watch:
    """Console errors, page errors and every request a page makes (anything else is aborted)."""

    def __init__(self, page: Any, allowed: Any) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.blocked: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))

        def route(r: Any) -> None:
            if allowed(r.request.url):
                r.continue_()
            else:
                self.blocked.append(r.request.url)
                r.abort()

        page.route("**/*", route)


@pytest.mark.parametrize(
    "objectives",
    [(("acc", "maximize"),), (("acc", "maximize"), ("cost", "minimize"))],
    ids=["single", "multi"],
)
def test_report_renders_every_plot_offline(
    browser: Any, tmp_path: Path, objectives: tuple[tuple[str, str], ...]
) -> None:
    from ml_experiment.report import build_report

    kind = "multi" if len(objectives) > 1 else "single"
    synth = synth_group(tmp_path, name=f"browser-{kind}", n=30, objectives=objectives, workers=4)
    index = build_report(synth.parent_run_id, tracking_uri=synth.uri, out_dir=tmp_path / "out")
    url = index.as_uri()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    watch = Watch(page, allowed=lambda u: u == url)
    page.goto(url)
    page.wait_for_load_state("load")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-report-plot]')].every("
        "b => b.querySelector('.js-plotly-plot') && b.querySelector('.js-plotly-plot')._fullLayout)",
        timeout=30_000,
    )
    states = page.evaluate(PLOT_STATE_JS)
    expected = ["history", "importances", "parallel", "slice", "contour", "intermediate"]
    expected += ["timeline", *(["pareto"] if kind == "multi" else [])]
    drawn = {s["id"].split("-")[1] for s in states}
    assert drawn == set(expected), states
    for s in states:
        assert s["rendered"] and s["traces"] > 0 and s["points"] > 0, s
        assert s["marks"] > 0, f"{s['id']} has data but drew nothing: {s}"
        assert s["width"] > 300, s
    rows = page.locator("#trials tbody tr")
    assert rows.count() == 30
    page.fill("#filter", "timed out")
    visible = page.locator("#trials tbody tr:visible")
    assert 0 < visible.count() < 30
    page.fill("#filter", "")
    keep_screenshot(page, tmp_path / f"report-{kind}.png")
    assert watch.errors == []
    assert watch.requests == [url] and watch.blocked == []
    page.close()


def test_experiment_report_renders_offline(browser: Any, tmp_path: Path) -> None:
    from ml_experiment.report import build_report
    from ml_experiment.tracking._mlflow import KnowledgeCenter, MLflowTracker

    tracker = MLflowTracker(KnowledgeCenter.resolve(f"sqlite:///{tmp_path / 'mlruns.db'}"))
    run_id = tracker.create_run(
        "exp", tags={"ml_experiment.kind": "experiment", "env.python_version": "3.11.7"}
    )
    tracker.log(
        run_id,
        params={"lr": 0.1, "epochs": 30},
        metrics={"val_accuracy": 0.914},
        step=29,  # final metrics land on the last step, as the framework logs them
        steps=[(i, {"loss": 1 / (i + 1), "val_accuracy": 0.5 + i / 70}) for i in range(30)],
    )
    tracker.end_run(run_id)
    index = build_report(run_id, tracking_uri=tracker.kc.tracking_uri, out_dir=tmp_path / "out")
    url = index.as_uri()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    watch = Watch(page, allowed=lambda u: u == url)
    page.goto(url)
    states = wait_for_plots(page)
    assert len(states) == 2  # loss and val_accuracy have steps
    assert page.locator("#env-table").inner_text().count("3.11.7") == 1
    keep_screenshot(page, tmp_path / "report-experiment.png")
    assert watch.errors == [] and watch.requests == [url] and watch.blocked == []
    page.close()


GROUP_SCRIPT = """
import time
from ml_experiment import job

@job
def main(x: float = 0.0, kind: str = "a"):
    if kind == "c" and x > 2:
        raise ValueError("x too large for kind c")
    for step in range(4):
        time.sleep(0.2)
        yield {"loss": (x - 1.0) ** 2 / (step + 1) + (0.5 if kind == "b" else 0.0)}
"""

GROUP_FILE = """
name: ui-group
kind: group
num_trials: 6
sampler: random
pruner: none
seed: 3
param_space:
  x: uniform(-3, 3)
  kind: choice(['a', 'b', 'c'])
metric: {name: loss, direction: minimize}
resources_per_worker: {cpu: 1}
ray_config: {num_cpus: 2}
run:
  - train.py
"""


@pytest.fixture(scope="module")
def real_group(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 6-trial group run through the installed command, and its report."""
    from tests.conftest import client, run_cli, write

    work = tmp_path_factory.mktemp("ui-group")
    write(work / "train.py", GROUP_SCRIPT)
    write(work / "group.yaml", GROUP_FILE)
    done = run_cli("run", "group.yaml", cwd=work, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    made = run_cli("report", "ui-group", cwd=work, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    index = Path(made.stdout.strip().splitlines()[-1])
    assert index == work / "reports" / "ui-group" / "index.html"
    c = client(work)
    exp = c.get_experiment_by_name("ui-group")
    runs = c.search_runs([exp.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return {
        "work": work,
        "index": index,
        "exp_id": exp.experiment_id,
        "parent": parent.info.run_id,
        "children": sorted(r.info.run_name for r in children),
    }


def wait_for_plots(frame: Any) -> list[dict[str, Any]]:
    frame.wait_for_function(
        "() => { const b = [...document.querySelectorAll('[data-report-plot]')];"
        " return b.length > 0 && b.every(x => x.querySelector('.js-plotly-plot')"
        " && x.querySelector('.js-plotly-plot')._fullLayout) }",
        timeout=60_000,
    )
    states: list[dict[str, Any]] = frame.evaluate(PLOT_STATE_JS)
    for s in states:
        assert s["rendered"] and s["traces"] > 0 and s["points"] > 0 and s["marks"] > 0, s
    return states


def test_real_group_report_renders_offline(browser: Any, real_group: dict[str, Any]) -> None:
    url = real_group["index"].as_uri()
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    watch = Watch(page, allowed=lambda u: u == url)
    page.goto(url)
    states = wait_for_plots(page)
    drawn = {s["id"].split("-")[1] for s in states}
    assert {"history", "importances", "parallel", "slice", "contour"} <= drawn
    assert {"intermediate", "timeline"} <= drawn  # the job yields steps; trials ran on 2 workers
    assert page.locator("#trials tbody tr").count() == 6
    keep_screenshot(page, real_group["work"] / "report-real-group.png")
    assert watch.errors == [] and watch.requests == [url] and watch.blocked == []
    page.close()


@pytest.fixture(scope="module")
def ui(real_group: dict[str, Any]) -> Iterator[str]:
    """``ml-experiment ui`` on a free loopback port, stopped (its process group) afterwards."""
    import signal
    import subprocess
    import urllib.request

    from tests.conftest import CLI

    port = free_port()
    log = (real_group["work"] / "ui.log").open("w")
    proc = subprocess.Popen(
        [*CLI, "ui", "--port", str(port)],
        cwd=real_group["work"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (real_group["work"] / "ui.log").read_text()
            assert time.time() < deadline, "the MLflow UI did not answer within 120 s"
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def ui_page(browser: Any, base: str) -> Any:
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    # The UI is served from loopback; anything else would be a leak (none is expected).
    Watch(page, allowed=lambda u: u.startswith(base) or u.startswith("blob:"))
    return page


def close_assistant(page: Any) -> None:
    """MLflow 3's assistant side panel covers a third of the page; it is not what we look at."""
    with contextlib.suppress(Exception):  # absent in other MLflow versions: nothing to close
        page.get_by_role("button", name="Close").first.click(timeout=5_000)


def test_ui_experiment_page_lists_the_group_and_its_trials(
    browser: Any, real_group: dict[str, Any], ui: str
) -> None:
    page = ui_page(browser, ui)
    page.goto(f"{ui}/#/experiments/{real_group['exp_id']}/runs")
    page.get_by_text("matching runs").first.wait_for(timeout=60_000)
    row = page.locator('[role="row"]', has_text="ui-group").first
    row.wait_for(timeout=30_000)
    close_assistant(page)
    # The parent run is listed with its trials folded under it; unfold them.
    row.locator('[col-id="attributes.`Run Name`"] button').first.click()
    for name in real_group["children"]:
        page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
    keep_screenshot(page, real_group["work"] / "mlflow-ui-experiment.png")
    page.close()


def test_ui_parent_run_page_shows_children_and_the_report(
    browser: Any, real_group: dict[str, Any], ui: str
) -> None:
    page = ui_page(browser, ui)
    run_url = f"{ui}/#/experiments/{real_group['exp_id']}/runs/{real_group['parent']}"
    page.goto(run_url)
    page.get_by_text("Child runs").first.wait_for(timeout=60_000)
    close_assistant(page)
    for name in real_group["children"]:
        page.get_by_text(name).first.wait_for(timeout=30_000)
    keep_screenshot(page, real_group["work"] / "mlflow-ui-parent-run.png")

    page.goto(f"{run_url}/artifacts/report/index.html")
    page.get_by_text("report/index.html").first.wait_for(timeout=60_000)
    for name in ("index.html", "history.png", "timeline.png"):
        page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
    # MLflow shows the HTML artifact in a frame: the report renders there too.
    frame = None
    deadline = time.time() + 60
    while frame is None and time.time() < deadline:
        for f in page.frames[1:]:
            try:
                if f.locator("[data-report-plot]").count() > 0:
                    frame = f
                    break
            except Exception:  # a frame still loading
                continue
        page.wait_for_timeout(500)
    assert frame is not None, "the report artifact is not shown in the run page"
    wait_for_plots(frame)
    keep_screenshot(page, real_group["work"] / "mlflow-ui-report-artifact.png")
    page.close()
