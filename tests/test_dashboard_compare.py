"""The Compare, Gate and Live pages under AppTest, over real fixture stores.

The Gate page must show `servelab gate --json`'s numbers for the same picks on the same store:
the CLI runs in a subprocess, the page in AppTest, and every metric's verdict, medians,
change, interval and p-value are compared.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import data as dashboard_data
from dashboard.data import clear_caches
import store_fixtures as fx
from analysis import compare
from apptest_kit import no_errors

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "dashboard" / "app_pages"
TIMEOUT = 60
SIDE_A = [f"r20260102-10000{i}-aaaa" for i in range(4)]
SIDE_B = [f"r20260102-11000{i}-bbbb" for i in range(4)]


@pytest.fixture(scope="module")
def two_labels(tmp_path_factory) -> Path:
    """Four runs labelled `before` and four labelled `after`, all the same open-loop load."""
    path = tmp_path_factory.mktemp("gate") / "servelab.duckdb"
    for i, run_id in enumerate(SIDE_A):
        fx.add_open_run(path, run_id, seed=10 + i, label="before")
    for i, run_id in enumerate(SIDE_B):
        fx.add_open_run(path, run_id, seed=20 + i, label="after")
    return path


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_caches()
    yield
    clear_caches()


def page(monkeypatch, store: Path, name: str, **params: str) -> AppTest:
    monkeypatch.setenv("SERVELAB_STORE", str(store))
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def test_gate_page_shows_the_cli_numbers(cli, monkeypatch, two_labels):
    res = cli("gate", "--baseline", "before", "--candidate", "after", "--repeats", "4", "--json",
              "--store", str(two_labels))
    assert res.returncode in (0, 1, 3), res.stderr
    want = json.loads(res.stdout)
    at = page(monkeypatch, two_labels, "gate", baseline="before", candidate="after")
    at.number_input[0].set_value(4).run()
    no_errors(at)
    assert f"gate: {want['verdict']}" in at.subheader[0].value
    shown = at.dataframe[0].value.set_index("metric")
    assert list(shown.index) == [m["name"] for m in want["metrics"]]
    for m in want["metrics"]:
        row = shown.loc[m["name"]]
        assert row["verdict"] == m["verdict"]
        for col, key in (("baseline", "baseline_median"), ("candidate", "candidate_median"), ("change", "rel_change"),
                         ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("p", "p_value")):
            assert row[col] == pytest.approx(m[key], rel=1e-12, nan_ok=True), (m["name"], col)
    assert at.session_state["side-baseline"] == ["before"]


def test_gate_page_says_when_the_sides_ran_different_loads(monkeypatch, tmp_path):
    store = fx.build_store(tmp_path / "s.duckdb")  # an open-loop and a closed-loop run
    at = page(monkeypatch, store, "gate", baseline=fx.OPEN_RUN, candidate=fx.CLOSED_RUN)
    assert not at.exception
    assert any("ran different loads" in e.value for e in at.error), [e.value for e in at.error]


def test_compare_two_label_sets_uses_the_gate_statistics(monkeypatch, two_labels):
    at = page(monkeypatch, two_labels, "compare", A="before", B="after")
    no_errors(at)
    assert len(at.get("plotly_chart")) == 3  # TTFT, ITL, E2E ECDFs
    deltas = at.dataframe[1].value
    assert set(deltas["metric"]) == {"TTFT", "ITL", "E2E"}
    assert deltas["method"].str.startswith("over runs (4 vs 4)").all()
    assert (deltas["delta_low_ms"] <= deltas["delta_high_ms"]).all()
    assert (deltas["change_low"] <= deltas["change_high"]).all()
    assert "The stored configs differ" not in " ".join(i.value for i in at.info)
    diff = at.dataframe[2].value  # only the label and the seed-free settings differ
    assert list(diff["setting"]) == ["label"]
    names = [b.label for b in at.get("download_button")]
    assert {"TTFT ECDF (CSV)", "ITL ECDF (CSV)", "E2E ECDF (CSV)", "deltas (CSV)"} <= set(names)


@pytest.mark.parametrize("name, params", [("compare", {"A": "before", "B": "after"}),
                                          ("gate", {"baseline": "before", "candidate": "after"})])
def test_a_run_set_is_read_through_one_open_closed_before_the_page_ends(monkeypatch, two_labels, name, params):
    """Eight runs, one open of the store (an open costs about what reading a run does), and no
    read handle left behind: a writer in another process can take the store at once."""
    opens = []

    def counted(path, *args, **kw):
        opens.append(path)
        return real(path, *args, **kw)

    real = dashboard_data.connect_read
    monkeypatch.setattr(dashboard_data, "connect_read", counted)
    clear_caches()
    no_errors(page(monkeypatch, two_labels, name, **params))
    assert opens == [str(two_labels)]
    import duckdb

    duckdb.connect(str(two_labels)).close()  # would fail on DuckDB's file lock with a read open left
    no_errors(page(monkeypatch, two_labels, name, **params))  # every run cached now: no open at all
    assert len(opens) == 1


def test_compare_two_runs_bootstraps_over_requests(monkeypatch, tmp_path):
    store = fx.build_store(tmp_path / "s.duckdb")
    at = page(monkeypatch, store, "compare", A=fx.OPEN_RUN, B=fx.CLOSED_RUN)
    no_errors(at)
    deltas = at.dataframe[1].value
    assert (deltas["method"] == "bootstrap over requests").all()
    ttft = deltas[(deltas["metric"] == "TTFT") & (deltas["percentile"] == "p50")].iloc[0]
    assert ttft["delta_low_ms"] <= ttft["delta_ms"] <= ttft["delta_high_ms"]
    diff = at.dataframe[2].value.set_index("setting")
    assert diff.loc["load.mode", "A"] == "'open'" and diff.loc["load.mode", "B"] == "'closed'"
    assert "load.seed" not in diff.index  # only what changed


def test_request_bootstrap_covers_a_known_shift():
    rng = np.random.default_rng(3)
    a = rng.exponential(50e6, 4000)
    rows = {r["percentile"]: r for r in compare.request_deltas(a, a + 10e6)}
    assert rows["p50"]["delta_ms"] == pytest.approx(10.0)
    assert rows["p50"]["delta_low_ms"] <= 10.0 <= rows["p50"]["delta_high_ms"]
    x, y = compare.ecdf(a, points=100)
    assert len(x) == 100 and y[-1] == 1.0 and np.all(np.diff(x) >= 0)


def test_live_page_follows_a_run_in_progress(monkeypatch, tmp_path):
    from store import add_step, create_run, spool_dir

    store = fx.build_store(tmp_path / "s.duckdb")
    create_run(store, "r20260103-000000-live", {"load": {"mode": "open", "rate": 2.0}}, "builtin", "live one",
               fx.HOST, "0.1.0")
    add_step(store, "r20260103-000000-live", 0, "open", None, 2.0, 10.0, 1.0)
    (spool_dir(store, "r20260103-000000-live", 0) / "requests-w0.jsonl").write_text('{"a": 1}\n{"a": 2}\n{"a"')
    at = page(monkeypatch, store, "live")
    no_errors(at)
    running = at.dataframe[0].value
    assert list(running["run"]) == ["run?run=r20260103-000000-live"]
    assert int(running["requests spooled"].iloc[0]) == 2  # the half-written third line is not counted yet


def test_live_page_says_delayed_while_a_writer_holds_the_store(monkeypatch, tmp_path):
    import subprocess
    import sys

    store = fx.build_store(tmp_path / "s.duckdb")
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(60)", str(store)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        at = page(monkeypatch, store, "live")
        assert not at.exception
        assert any("Live data delayed" in w.value for w in at.warning), [w.value for w in at.warning]
    finally:
        holder.kill()
        holder.wait()


def test_flatten_and_config_diff():
    a = {"load": {"rate": 5.0, "mode": "open"}, "label": "x"}
    b = {"load": {"rate": 6.0, "mode": "open"}, "label": "x"}
    assert compare.config_diff([a], [b]) == [{"setting": "load.rate", "A": "5.0", "B": "6.0"}]
    assert compare.config_diff([a, b], [a])[0]["A"] == "5.0 | 6.0"
    assert math.isclose(compare.request_deltas(np.ones(10), np.full(10, 2.0))[0]["change"], 1.0)
