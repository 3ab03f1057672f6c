"""The capacity plan's HTML report in headless Chromium: it opens from a file with the network
cut off, draws its three charts, and asks for nothing beyond the file itself.

The report is made as `servelab plan` makes it (servelab/plan.py, plan_report.py) over a store
holding a sweep (tests/decision_fixtures.py). Every request the page makes is routed through
the test: anything not `file://` is aborted and fails the test. Skipped without /usr/bin/chromium.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import decision_fixtures as dfx
from servelab.plan import make_plan, prices_by_setup
from servelab.plan_report import write
from servelab.plan_traffic import read_traffic
from servelab.sweeps import sweep_summary

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no browser: {CHROMIUM} is missing "
                                "(apt-get install chromium; CI installs it)")


@pytest.fixture
def report(tmp_path) -> Path:
    store = tmp_path / "s.duckdb"
    dfx.add_sweep(store)
    sweep = sweep_summary(str(store), dfx.SWEEP_ID)
    (tmp_path / "day.csv").write_text("".join(f"{r}\n" for r in [3, 2, 2, 5, 12, 20, 26, 24, 18, 9]))
    plan = make_plan(sweep, read_traffic(str(tmp_path / "day.csv")), growth="20%/quarter",
                     prices=prices_by_setup(sweep))
    return Path(write(plan, tmp_path / "out")["html"])


def test_report_renders_offline_in_chromium(report, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    requested, left, errors = [], [], []

    def route(r):
        requested.append(r.request.url)
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            left.append(r.request.url)
            r.abort()

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1300, "height": 1000})
            context.route("**/*", route)
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(report.as_uri())
            charts = page.locator(".js-plotly-plot")
            charts.nth(2).wait_for(timeout=30_000)
            assert charts.count() == 3
            page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=30_000)
            assert page.locator(".js-plotly-plot .barlayer .point").count() >= 4  # cost bars, per pricing
            title = page.locator(".js-plotly-plot .gtitle").all_text_contents()
            assert any(t.startswith("Traffic and the capacity") for t in title), title
            page.wait_for_timeout(500)  # anything late (fonts, tiles) would show up now
            page.screenshot(path=str(tmp_path / "plan.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert left == [], f"requests left the machine: {left}"
    assert requested == [report.as_uri()]
