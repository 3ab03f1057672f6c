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

- every page registered in dashboard/app.py (read from its st.Page lines, so a page added
  later is opened too) over a store made by a REAL `servelab sweep` of the built-in server
  (calibration mode, a grid of 2 rates x 2 setups, 1.5 s points): no exception text, the
  charts each page draws, a screenshot of each.

Screenshots go to $SERVELAB_ARTIFACTS when set (CI uploads that folder), else tmp_path, and are copied
to /tmp/dash-*.png for a human look. Skipped when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import decision_fixtures as dfx
from conftest import CLI
import store_fixtures as fx

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
RUNS_VIEWPORT = {"width": 1400, "height": 700}
RUN_VIEWPORT = {"width": 1400, "height": 2000}  # tall: Streamlit scrolls inside its own container
WAIT_MS = 60_000
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
    store = fx.build_store(tmp_path / "servelab.duckdb")
    dfx.add_sweep(store, fx.OPEN_RUN)
    yield from served_dashboard(store, dict(os.environ), tmp_path / "streamlit.log")


def served_dashboard(store, env: dict, log):
    """Serve the dashboard over `store` for one test; yields its URL. Anything the server logged
    as a traceback is a failure too."""
    from servelab.dashboard_proc import dashboard_command

    port = free_port()
    cmd = [*dashboard_command("127.0.0.1", port), "--server.fileWatcherType", "none"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=dict(env, SERVELAB_STORE=str(store)), stdout=out, stderr=subprocess.STDOUT,
                                cwd=log.parent, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        stop(proc)
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
            assert [line.strip() for line in nav if line.strip()] == [title for title, _ in registered_pages()]
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


# A real sweep: two built-in calibration servers (fixed 40 ms TTFT, 10 ms gaps; one serves a
# single stream at a time, so at 6 req/s its queue grows past the SLO), open loop at 2 and 6 req/s.
REAL_SWEEP = {
    "name": "browser", "slo": "ttft_p99<=300ms", "duration_s": 1.5, "drain_s": 1, "repeats": 1,
    "search": {"kind": "grid", "rates": [2, 6]}, "workload": {"max_tokens": 8, "prompt_tokens": 8},
    "profile": {"enabled": False},
    "setups": {"one": {"server": {"calibration": True, "calib_ttft_ms": 40, "calib_concurrency": 1},
                       "price_per_hour": 0.5},
               "four": {"server": {"calibration": True, "calib_ttft_ms": 40, "calib_concurrency": 4},
                        "price_per_hour": 0.8}},
}
# url path -> the plotly charts the page draws over that store (pages not listed: any number)
REAL_CHARTS = {"runs": 0, "run": 3, "sweeps": 3, "frontier": 1, "levers": 1, "recommend": 1, "prices": 0, "compare": 3,
               "gate": 1, "live": 1}
HEADINGS = {"prices": "Hardware and prices"}


def registered_pages() -> list[tuple[str, str]]:
    """(url path, title) of every st.Page in dashboard/app.py, in the navigation's order."""
    app = (Path(__file__).resolve().parents[1] / "dashboard" / "app.py").read_text()
    return re.findall(r'st\.Page\([^)]*title="([^"]+)",\s*url_path="([^"]+)"', app)


def artifacts(tmp_path: Path) -> Path:
    out = Path(os.environ.get("SERVELAB_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def real_sweep_url(tmp_path):
    """The dashboard over a store that `servelab sweep` just made (about 20 s on 2 cores)."""
    spec = tmp_path / "sweep.json"
    spec.write_text(json.dumps(REAL_SWEEP))
    store = tmp_path / "swept.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVELAB_")}
    done = subprocess.run([*CLI, "sweep", str(spec), "--store", str(store), "--json"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    yield from served_dashboard(store, env, tmp_path / "streamlit-sweep.log")


def test_every_registered_page_over_a_real_sweep(real_sweep_url, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    out = artifacts(tmp_path)
    pages = registered_pages()
    assert {"compare", "gate", "live"} <= {p for _, p in pages}
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=RUN_VIEWPORT).new_page()
            page_errors: list[str] = []
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            for title, path in pages:
                page.goto(f"{real_sweep_url}/{path}")
                want = REAL_CHARTS.get(path)
                if want is None:  # a page this test does not know yet (e.g. one added later): its title
                    page.locator("h1").first.wait_for(timeout=WAIT_MS)
                else:
                    page.get_by_role("heading", name=HEADINGS.get(path, title)).first.wait_for(timeout=WAIT_MS)
                if want:
                    page.locator(".js-plotly-plot").nth(want - 1).wait_for(timeout=WAIT_MS)
                    page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=WAIT_MS)
                page.wait_for_timeout(1500)  # plotly's first draw, the grids' canvas, a Live refresh
                if want is not None:
                    assert page.locator(".js-plotly-plot").count() == want, path
                assert page.locator('[data-testid="stException"]').count() == 0, path
                assert page.get_by_text("Traceback").count() == 0, path
                assert page.get_by_text("Live data delayed").count() == 0, path  # nothing writes now
                shot = out / f"dash-sweep-{path}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000, path
            assert not page_errors, page_errors
        finally:
            browser.close()
