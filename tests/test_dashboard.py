"""The Streamlit dashboard under streamlit.testing.v1.AppTest, over real fixture stores.

Each page runs headless in this process against a store built by tests/store_fixtures.py
(spool files -> ingest, as a real run leaves them): the app entry (default page = Runs),
each page file directly, and the unhappy stores: empty, missing, not a servelab store,
and locked by a writer in another process.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.data import clear_caches
from apptest_kit import no_errors
import store_fixtures as fx
from store import add_step, create_run, finish_run

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
RUNS_PAGE = ROOT / "dashboard" / "app_pages" / "runs.py"
RUN_PAGE = ROOT / "dashboard" / "app_pages" / "run.py"
TIMEOUT = 60  # generous for a cold first run on a 2-core machine; a normal run takes ~1 s


@pytest.fixture(scope="module")
def store_file(tmp_path_factory) -> Path:
    return fx.build_store(tmp_path_factory.mktemp("store") / "servelab.duckdb")


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The pages cache reads per store path; no test may see another test's cached rows."""
    clear_caches()
    yield
    clear_caches()


def run_app(monkeypatch, store: Path, script: Path = APP, run: str | None = None,
            timeout: float = TIMEOUT) -> AppTest:
    monkeypatch.setenv("SERVELAB_STORE", str(store))
    at = AppTest.from_file(str(script), default_timeout=timeout)
    if run is not None:
        at.query_params["run"] = run
    return at.run()


def metric(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r} in {[m.label for m in at.metric]}"
    return found[0]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def charts(at: AppTest) -> list[dict]:
    """The plotly figures on the page, as their JSON specs."""
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def points(trace: dict) -> int:
    """How many x values a trace has (plotly 6 ships arrays base64-encoded)."""
    x = trace.get("x")
    if x is None:
        return 0
    if isinstance(x, dict) and "bdata" in x:
        return np.frombuffer(base64.b64decode(x["bdata"]), dtype=np.dtype(x["dtype"])).size
    return sum(v is not None for v in x)


# --- happy path -----------------------------------------------------------------------


def check_runs_page(at: AppTest) -> None:
    no_errors(at)
    assert [t.value for t in at.title] == ["Runs"]
    table = at.dataframe[0].value
    assert list(table["run"]) == [f"run?run={fx.CLOSED_RUN}", f"run?run={fx.OPEN_RUN}"]  # newest first
    assert dict(zip(table["run"].str.removeprefix("run?run="), table["requests"])) == fx.REQUESTS
    assert list(table["load"]) == ["closed 2 users", "open 5 req/s"]  # no "1 user" on the open-loop run
    assert list(table["status"]) == ["completed", "completed"]
    assert "2 runs: 2 completed" in texts(at.caption)


def test_app_entry_defaults_to_the_runs_page(monkeypatch, store_file):
    at = run_app(monkeypatch, store_file)
    check_runs_page(at)
    assert str(store_file) in texts(at.caption)


def test_runs_page_file_lists_every_run(monkeypatch, store_file):
    check_runs_page(run_app(monkeypatch, store_file, RUNS_PAGE))


@pytest.mark.parametrize("run_id", fx.RUN_IDS)
def test_run_page_shows_metrics_table_and_charts(monkeypatch, store_file, run_id):
    at = run_app(monkeypatch, store_file, RUN_PAGE, run=run_id)
    no_errors(at)
    assert not at.warning
    assert at.selectbox[0].value == run_id
    assert at.query_params["run"] == run_id
    assert metric(at, "requests") == str(fx.REQUESTS[run_id])
    open_loop = run_id == fx.OPEN_RUN
    assert metric(at, "errors") == str(fx.OPEN_ERRORS if open_loop else 0)
    assert float(metric(at, "req/s")) > 0 and float(metric(at, "output tok/s")) > 0
    assert metric(at, "SLO attainment") == ("73.9%" if open_loop else "–")

    subheaders = [s.value for s in at.subheader]
    assert "Latency percentiles (ms)" in subheaders and "Latency over time" in subheaders
    assert ("SLO" in subheaders) == open_loop
    assert "Server's view" in subheaders  # the fixture's responses carry the server's timings
    server = next(d.value for d in at.dataframe if "what" in d.value.columns).set_index("what")["value"]
    assert server["cache: unknown"] == server["responses with server timings"]  # no outcome given
    assert "queue_ms p50 / p99" in server.index
    latency = next(d.value for d in at.dataframe if "metric" in d.value.columns)
    assert list(latency.columns) == ["metric", "p50", "p90", "p95", "p99", "p99.9", "mean"]
    expected = ["TTFT", "ITL", "TPOT", "E2E"] + (["TTFT from schedule", "schedule lag"] if open_loop else [])
    assert sorted(latency["metric"]) == sorted(expected)  # closed loop has no schedule
    assert latency.drop(columns="metric").notna().all().all()
    ttft = latency.set_index("metric").loc["TTFT"]
    assert 40 <= ttft["p50"] <= ttft["p99"] <= 120  # the fixture's TTFTs are 40-120 ms

    figs = charts(at)
    assert len(figs) == 3  # TTFT histogram, ITL histogram, latency over time
    titles = [f["layout"]["xaxis"]["title"]["text"] for f in figs]
    assert titles == ["TTFT (ms)", "gap between output chunks (ms)", "time since the first request was sent (s)"]
    assert all(sum(points(t) for t in f["data"]) > 0 for f in figs), "an empty chart"
    traces = {t.get("name"): points(t) for t in figs[2]["data"]}
    ok = fx.REQUESTS[run_id] - (fx.OPEN_ERRORS if open_loop else 0)
    assert traces["TTFT"] == traces["E2E"] == ok
    assert traces.get(f"failed ({fx.OPEN_ERRORS})", 0) == (fx.OPEN_ERRORS if open_loop else 0)
    assert bool(at.expander) == open_loop  # the failed-requests breakdown
    if open_loop:
        failures = at.expander[0].dataframe[0].value
        assert set(failures["status"]) == {"http_error", "timeout"} and failures["requests"].sum() == 2


def test_run_page_defaults_to_the_newest_run_and_switches_with_the_picker(monkeypatch, store_file):
    at = run_app(monkeypatch, store_file, RUN_PAGE)
    no_errors(at)
    assert at.selectbox[0].value == fx.CLOSED_RUN and metric(at, "requests") == str(fx.CLOSED_OK)
    at.selectbox[0].select(fx.OPEN_RUN).run()
    no_errors(at)
    assert metric(at, "requests") == str(fx.REQUESTS[fx.OPEN_RUN])
    assert at.query_params["run"] == fx.OPEN_RUN
    at.run()  # a plain rerun keeps the choice
    assert at.selectbox[0].value == fx.OPEN_RUN and metric(at, "requests") == str(fx.REQUESTS[fx.OPEN_RUN])


def test_app_entry_navigates_to_the_run_page(monkeypatch, store_file):
    at = run_app(monkeypatch, store_file)
    at.query_params["run"] = fx.OPEN_RUN
    at.switch_page("app_pages/run.py").run()
    no_errors(at)
    assert [t.value for t in at.title] == ["Run"]
    assert metric(at, "requests") == str(fx.REQUESTS[fx.OPEN_RUN])
    assert len(charts(at)) == 3


def test_run_page_with_an_unknown_run_id_warns_and_shows_the_newest(monkeypatch, store_file):
    at = run_app(monkeypatch, store_file, RUN_PAGE, run="r-nope")
    no_errors(at)
    assert "No run `r-nope`" in texts(at.warning)
    assert at.selectbox[0].value == fx.CLOSED_RUN
    assert metric(at, "requests") == str(fx.CLOSED_OK)


def test_runs_without_requests_failed_or_still_running(monkeypatch, tmp_path):
    path = tmp_path / "s.duckdb"
    create_run(path, "r-failed", {"load": {"mode": "open", "rate": 2.0}}, "http://x:1", None, {}, "0.1.0")
    finish_run(path, "r-failed", "failed", "cannot reach http://x:1")
    create_run(path, "r-running", {"load": {"mode": "closed", "users": 3}}, "builtin", "live", {}, "0.1.0")
    add_step(path, "r-running", 0, "closed", 3, None, 10.0, 1.0)

    runs = run_app(monkeypatch, path)
    no_errors(runs)
    table = runs.dataframe[0].value
    assert set(table["status"]) == {"failed", "running"} and list(table["requests"]) == [0, 0]

    failed = run_app(monkeypatch, path, RUN_PAGE, run="r-failed")
    assert not failed.exception
    assert "Run failed: cannot reach http://x:1" in texts(failed.error)
    assert metric(failed, "requests") == "0" and metric(failed, "req/s") == "–"
    assert "No latency figures" in texts(failed.info) and "No requests recorded." in texts(failed.info)
    assert not charts(failed)

    running = run_app(monkeypatch, path, RUN_PAGE, run="r-running")
    no_errors(running)
    assert "still running" in texts(running.info)


def test_a_failed_self_check_is_marked_on_both_pages(monkeypatch, tmp_path):
    from analysis.selfcheck import self_check
    from store import runs as store_runs

    path = fx.build_store(tmp_path / "s.duckdb")
    steps = [{"step": 0, "mode": "open", "client_cpu_pct": 97.0, "scheduled": None, "capped": 0,
              "client_stall_max_ms": 12.5}]
    check = self_check([], steps)
    assert not check["passed"]
    store_runs.set_self_check(path, fx.OPEN_RUN, check)
    store_runs.set_self_check(path, fx.CLOSED_RUN, self_check([], [{**steps[0], "client_cpu_pct": 20.0}]))

    runs = run_app(monkeypatch, path)
    no_errors(runs)
    table = runs.dataframe[0].value
    status = dict(zip(table["run"].str.removeprefix("run?run="), table["status"]))
    assert status == {fx.OPEN_RUN: "completed (self-check failed)", fx.CLOSED_RUN: "completed"}

    failed = run_app(monkeypatch, path, RUN_PAGE, run=fx.OPEN_RUN)
    assert not failed.exception
    warning = texts(failed.warning)
    assert "failed its own self-check" in warning and "client CPU 97%" in warning
    assert "Load generator self-check" in [h.value for h in failed.subheader]
    figures = next(d.value for d in failed.dataframe if "figure" in d.value.columns)
    rows = dict(zip(figures["figure"], zip(figures["value"], figures["limit"])))
    assert rows["client CPU, % of one core (max over steps)"] == ("97", "<= 90")
    assert rows["client stalled at most, ms"] == ("12.5", "reported only")

    passed = run_app(monkeypatch, path, RUN_PAGE, run=fx.CLOSED_RUN)
    no_errors(passed)
    assert "self-check" not in texts(passed.warning)
    assert any("**passed**" in c for c in texts(passed.caption).splitlines())


# --- stores the pages must survive -----------------------------------------------------


PAGES = pytest.mark.parametrize("script", [APP, RUN_PAGE], ids=["app-runs", "run"])


@PAGES
def test_empty_store_shows_an_info_message(monkeypatch, tmp_path, script):
    at = run_app(monkeypatch, fx.build_empty_store(tmp_path / "empty.duckdb"), script)
    no_errors(at)
    assert "No runs in this store yet" in texts(at.info)
    assert not at.dataframe and not charts(at)


@PAGES
def test_missing_store_shows_a_warning(monkeypatch, tmp_path, script):
    missing = tmp_path / "nowhere" / "servelab.duckdb"
    at = run_app(monkeypatch, missing, script)
    no_errors(at)
    assert f"No store at `{missing}`" in texts(at.warning)
    assert not missing.exists()  # the dashboard never creates a store


def test_a_duckdb_file_that_is_not_a_servelab_store_shows_a_notice(monkeypatch, tmp_path):
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    at = run_app(monkeypatch, other)
    assert not at.exception
    assert f"{other} is a DuckDB file but not a servelab store" in texts(at.warning)


HOLD_LOCK = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # read-write: DuckDB's exclusive file lock
print("ready", flush=True)
sys.stdin.read()  # hold it until the test closes our stdin
"""


@pytest.fixture
def locked_store(tmp_path):
    """A fixture store held open read-write by a writer in another process."""
    path = fx.build_store(tmp_path / "locked.duckdb")
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.poll() is not None else line
        yield path
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@PAGES
def test_store_locked_by_another_process_shows_busy_not_a_hang(monkeypatch, locked_store, script):
    started = time.monotonic()
    at = run_app(monkeypatch, locked_store, script, run=fx.OPEN_RUN if script == RUN_PAGE else None)
    elapsed = time.monotonic() - started
    no_errors(at)
    assert "busy" in texts(at.warning)
    assert [b.label for b in at.button] == ["Retry"]
    assert not at.dataframe and not charts(at)
    assert elapsed < 15, f"the page took {elapsed:.1f} s on a locked store"


def test_run_page_shows_hardware_figures_chart_and_the_simulated_warning(monkeypatch, tmp_path):
    from analysis.summary import summarize_run
    from store import profiles, queries

    path = tmp_path / "hw.duckdb"
    fx.add_hardware_run(path)
    at = run_app(monkeypatch, path, RUN_PAGE, run=fx.HARDWARE_RUN)
    assert not at.exception, [e.value for e in at.exception]
    assert "Hardware" in [s.value for s in at.subheader]
    assert any("SIMULATED" in w.value for w in at.warning)
    run = queries.get_run(path, fx.HARDWARE_RUN)
    hw = summarize_run(run, queries.get_steps(path, fx.HARDWARE_RUN),
                       queries.get_requests(path, fx.HARDWARE_RUN),
                       samples=profiles.get_samples(path, fx.HARDWARE_RUN))["hardware"]
    assert hw["j_per_output_token"] > 0 and hw["power_w_mean"] >= 300
    assert metric(at, "J / output token") == f"{hw['j_per_output_token']:.3f}"
    assert metric(at, "mean power (W)") == f"{hw['power_w_mean']:.0f}"
    assert metric(at, "server CPU (%)") == "95"
    figs = charts(at)
    names = {t.get("name") for t in figs[-1]["data"]}
    assert {"GPU util %", "server CPU %", "GPU power (W)", "TTFT (ms)"} <= names
    # The torch-profiler window is shaded over its span, and its operators listed.
    shades = [sh for sh in figs[-1]["layout"]["shapes"] if sh.get("type") == "rect"]
    assert len({(sh["x0"], sh["x1"]) for sh in shades}) == 1  # one span, over both panels
    shade = shades[0]
    t0 = float(queries.get_requests(path, fx.HARDWARE_RUN)["t_send_ns"].min())
    assert abs(shade["x0"] - ((fx.T0 + 122 * fx.S) - t0) / 1e9) < 1e-6 and shade["x1"] - shade["x0"] == 2.0
    assert "Top operators (PyTorch profiler window)" in [s.value for s in at.subheader]
    (over_time,) = [f for f in figs if any(t.get("name") == "steady window (measured)" for t in f["data"])]
    assert "torch profiler on (slower)" in {t.get("name") for t in over_time["data"]}
    assert any(sh["x0"] == shade["x0"] and sh["x1"] == shade["x1"] for sh in over_time["layout"]["shapes"])
    assert list(at.dataframe[-1].value["name"]) == ["aten::mm", "aten::softmax"]


def test_run_page_shows_the_engine_setup_and_its_metrics(monkeypatch, tmp_path):
    """A run on a launched engine: its setup columns and /metrics scrapes (m007_engines)."""
    from store.runs import set_setup

    path = tmp_path / "s.duckdb"
    fx.add_closed_run(path)
    set_setup(path, fx.CLOSED_RUN, {"engine": "vllm", "engine_version": "0.32.0", "model": "/m/tiny",
                                    "dtype": "float32", "hardware": "2 x CPU"})
    labels = json.dumps({"engine": "0", "model_name": "/m/tiny"})
    rows = [(fx.CLOSED_RUN, 0, t * 10**9, t * 10**9, name, labels, value)
            for t in range(4) for name, value in (("vllm:num_requests_running", t % 3),
                                                  ("vllm:prefix_cache_queries_total", 100.0 * t))]
    with duckdb.connect(str(path)) as con:
        con.executemany("INSERT INTO engine_samples VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    at = run_app(monkeypatch, path, RUN_PAGE, run=fx.CLOSED_RUN)
    no_errors(at)
    assert "Engine" in [s.value for s in at.subheader]
    assert any("engine **vllm**" in c.value and "engine_version **0.32.0**" in c.value for c in at.caption)
    table = next(d.value for d in at.dataframe if "series" in d.value.columns).set_index("series")
    assert table.loc["vllm:num_requests_running", "mean"] == pytest.approx((0 + 1 + 2 + 0) / 4)
    assert table.loc["vllm:num_requests_running", "max"] == 2
    assert table.loc["vllm:prefix_cache_queries_total", "growth"] == 300
    over_time = [f for f in charts(at) if f["layout"]["xaxis"]["title"]["text"] == "time since the first scrape (s)"]
    assert over_time and over_time[0]["data"][0]["name"] == "vllm:num_requests_running"
