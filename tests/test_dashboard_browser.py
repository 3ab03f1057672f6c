"""The dashboard in a real headless browser: `streamlit run` over a fixture store + chromium.

Starts the dashboard exactly as `servelab dashboard` does (servelab.dashboard_proc's
command line) on a free port with SERVELAB_STORE pointing at a store built by
tests/store_fixtures.py, waits for /_stcore/health, then drives Debian's chromium with
Python playwright:

- a deep link (`/run?run=ID`) as the fresh server's first visit gets the app's own
  navigation and renders the metrics, latency table and three plotly charts;
- the Runs page lists both runs, and a click on a run id opens that run in a new tab;
- every sweep page (Sweeps, Frontier, Levers, Recommend, Hardware and prices) over a sweep
  of three priced setups (tests/decision_fixtures.py): its charts drawn, no exception; a
  price override set on Hardware and prices reaches the Recommend page.

Screenshots go to tmp_path, copied to /tmp/dash-*.png for a human look. Skipped when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import decision_fixtures as dfx
import store_fixtures as fx

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
RUNS_VIEWPORT = {"width": 1400, "height": 700}
RUN_VIEWPORT = {"width": 1400, "height": 2000}  # tall: Streamlit scrolls inside its own container
WAIT_MS = 60_000
NAV = ["Runs", "Run", "Sweeps", "Frontier", "Levers", "Recommend", "Hardware and prices", "Capacity plan"]
# url path -> (heading, plotly charts the page draws over the fixture sweep)
SWEEP_PAGES = {"sweeps": ("Sweeps", 3), "frontier": ("Frontier", 1), "levers": ("Levers", 1),
               "recommend": ("Recommend", 1), "prices": ("Hardware and prices", 0), "plan": ("Capacity plan", 3)}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no browser: {CHROMIUM} is missing "
                       "(apt-get install chromium; CI installs it)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200 and resp.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"streamlit did not become healthy in {timeout_s} s:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it leads its own session), SIGKILL if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def dashboard_url(tmp_path):
    """A running dashboard over a fixture store; always stopped afterwards."""
    from servelab.dashboard_proc import dashboard_command

    store = fx.build_store(tmp_path / "servelab.duckdb")
    dfx.add_sweep(store, fx.OPEN_RUN)
    port = free_port()
    log = tmp_path / "streamlit.log"
    env = dict(os.environ, SERVELAB_STORE=str(store))
    cmd = [*dashboard_command("127.0.0.1", port), "--server.fileWatcherType", "none"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        stop(proc)
    # Anything the server logged as a traceback is a failure too.
    assert "Traceback" not in log.read_text(), log.read_text()


def test_runs_then_run_page_in_chromium(dashboard_url, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=RUNS_VIEWPORT)
            page = context.new_page()
            page_errors: list[str] = []
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))

            # First visit of this fresh server: a deep link into the Run page. It must get
            # app.py's navigation (Runs, Run), not Streamlit's legacy `pages/` folder mode.
            page.set_viewport_size(RUN_VIEWPORT)
            page.goto(f"{dashboard_url}/run?run={fx.OPEN_RUN}")
            page.get_by_text("Latency percentiles").wait_for(timeout=WAIT_MS)
            charts = page.locator(".js-plotly-plot")
            charts.nth(2).wait_for(timeout=WAIT_MS)
            assert charts.count() == 3
            page.locator(".js-plotly-plot .scatterlayer .point").first.wait_for(timeout=WAIT_MS)
            nav = page.locator('[data-testid="stSidebarNav"]').inner_text().splitlines()
            assert [line.strip() for line in nav if line.strip()] == NAV
            assert page.get_by_text("SLO attainment").is_visible()
            metric = page.locator('[data-testid="stMetric"]', has_text="requests").first
            assert metric.locator('[data-testid="stMetricValue"]').inner_text().strip() == str(
                fx.REQUESTS[fx.OPEN_RUN])
            assert page.locator('[data-testid="stException"]').count() == 0
            page.wait_for_timeout(500)  # plotly animates its first draw
            run_png = tmp_path / "dash-run.png"
            page.screenshot(path=str(run_png))

            # Runs page (the default page at /).
            page.set_viewport_size(RUNS_VIEWPORT)
            page.goto(dashboard_url + "/")
            page.get_by_role("heading", name="Runs").wait_for(timeout=WAIT_MS)
            grid = page.locator('[data-testid="stDataFrame"]')
            grid.wait_for(timeout=WAIT_MS)
            # The data grid draws on a canvas; its cells live in an accessible (hidden) table.
            for run_id in fx.RUN_IDS:
                page.locator('[role="gridcell"]', has_text=run_id).wait_for(state="attached", timeout=WAIT_MS)
            assert page.get_by_text("2 runs: 2 completed").is_visible()
            page.wait_for_timeout(500)  # let the canvas paint before the screenshot
            runs_png = tmp_path / "dash-runs.png"
            page.screenshot(path=str(runs_png))

            # Click the newest run's id (first data row, first column): it opens in a new tab.
            box = grid.locator("canvas").first.bounding_box()
            assert box, "the runs grid has no canvas"
            x, y = box["x"] + 40, box["y"] + 35 + 17  # below the header row, mid first row
            page.mouse.move(x, y)
            with context.expect_page(timeout=WAIT_MS) as opened:
                page.mouse.click(x, y)
            run_page = opened.value
            run_page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            run_page.wait_for_load_state()
            assert run_page.url == f"{dashboard_url}/run?run={fx.CLOSED_RUN}"
            run_page.get_by_text("Latency percentiles").wait_for(timeout=WAIT_MS)
            run_page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
            assert run_page.locator('[data-testid="stMetric"]', has_text="requests").first.locator(
                '[data-testid="stMetricValue"]').inner_text().strip() == str(fx.REQUESTS[fx.CLOSED_RUN])
            assert not page_errors, page_errors
        finally:
            browser.close()

    for png in (runs_png, run_png):
        assert png.stat().st_size > 10_000
        try:
            shutil.copyfile(png, Path("/tmp") / png.name)
        except OSError:
            pass  # the copies are for a human look only


def _copy_for_a_look(png: Path) -> None:
    assert png.stat().st_size > 10_000
    try:
        shutil.copyfile(png, Path("/tmp") / png.name)
    except OSError:
        pass  # the copies are for a human look only


def _open(page, url: str, heading: str, charts: int) -> None:
    page.goto(url)
    page.get_by_role("heading", name=heading).wait_for(timeout=WAIT_MS)
    if charts:
        page.locator(".js-plotly-plot").nth(charts - 1).wait_for(timeout=WAIT_MS)
        page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=WAIT_MS)
    else:
        page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(800)  # plotly animates its first draw; the grids paint their canvas


def test_every_sweep_page_in_chromium(dashboard_url, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=RUN_VIEWPORT).new_page()
            page_errors: list[str] = []
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            for path, (heading, charts) in SWEEP_PAGES.items():
                _open(page, f"{dashboard_url}/{path}?sweep={dfx.SWEEP_ID}", heading, charts)
                assert page.locator(".js-plotly-plot").count() == charts, path
                assert page.locator('[data-testid="stException"]').count() == 0, path
                assert page.get_by_text("Traceback").count() == 0, path
                shots.append(tmp_path / f"dash-{path}.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
            # The frontier's markers are drawn, and a click on one gives links to its runs.
            page.goto(f"{dashboard_url}/frontier?sweep={dfx.SWEEP_ID}")
            marker = page.locator(".js-plotly-plot .scatterlayer .point").first
            marker.wait_for(timeout=WAIT_MS)
            page.wait_for_timeout(800)
            marker.click(force=True)
            page.get_by_text("Runs of").wait_for(timeout=WAIT_MS)
            assert page.locator(f'a[href="run?run={fx.OPEN_RUN}"]').count() >= 1

            # An override set on Hardware and prices reaches Recommend in the same session
            # (sidebar navigation keeps the session; a fresh page load would not).
            page.goto(f"{dashboard_url}/prices")
            form = page.locator('[data-testid="stForm"]')
            form.wait_for(timeout=WAIT_MS)
            form.get_by_role("button", name="Set price").click()
            page.locator('[role="gridcell"]', has_text="--price-per-hour continuous=1.0").wait_for(
                state="attached", timeout=WAIT_MS)
            page.locator('[data-testid="stSidebarNav"]').get_by_text("Recommend").click()
            page.get_by_role("heading", name="Recommend").wait_for(timeout=WAIT_MS)
            page.get_by_text("Session price overrides in force").wait_for(timeout=WAIT_MS)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert not page_errors, page_errors
        finally:
            browser.close()
    for png in shots:
        _copy_for_a_look(png)
