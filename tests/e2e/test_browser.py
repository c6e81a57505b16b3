"""The report in a real browser: Playwright driving Debian's Chromium, offline, from a file."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.report.conftest import synth_group

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
