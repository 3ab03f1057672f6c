"""The Sweeps page under AppTest, over a store holding a sweep's rows (store/sweeps.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.data import clear_caches
from store import sweeps as store_sweeps
from store.schema import connect_write

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "dashboard" / "app_pages" / "sweeps.py"
SPEC = {"name": "levers", "slo": "ttft_p99<=500ms", "duration_s": 10, "repeats": 2,
        "search": {"kind": "capacity", "low": 1, "high": 32, "rel_tol": 0.1},
        "setups": {"none": {"server": {"batching": "none"}}, "continuous": {"server": {"batching": "continuous"}}}}


def point(setup, repeat, probe, rate, p99):
    return {"setup": setup, "repeat": repeat, "probe": probe, "rate": rate, "users": None, "run_id": f"r-{setup}{probe}",
            "status": "completed", "slo_met": p99 <= 500, "margin": p99 / 500, "slo_attainment": 1.0 if p99 <= 500 else 0.7,
            "offered_rate": rate, "req_s": rate, "output_tok_s": rate * 32, "output_tokens_per_req": 32.0,
            "ttft_ms": {"p50": p99 / 3, "p99": p99}, "tpot_ms": {"p50": 10.0, "p99": 20.0}}


@pytest.fixture
def store(tmp_path, monkeypatch):
    path = tmp_path / "s.duckdb"
    connect_write(path).close()
    store_sweeps.create_sweep(path, "s1", "levers", SPEC, "spec.yaml", SPEC["slo"], "test")
    for setup, base in (("none", 3.0), ("continuous", 12.0)):
        for r in range(2):
            for k, (f, p99) in enumerate([(0.8, 200.0), (1.2, 900.0), (1.0 + 0.02 * r, 480.0), (1.1, 560.0)]):
                store_sweeps.add_point(path, {**point(setup, r, k, base * f, p99), "sweep_id": "s1",
                                              "point": point(setup, r, k, base * f, p99)})
    store_sweeps.finish_sweep(path, "s1", "completed", None)
    monkeypatch.setenv("SERVELAB_STORE", str(path))
    clear_caches()
    yield path
    clear_caches()


def test_sweeps_page_shows_capacity_latency_and_attainment(store):
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error
    assert len(at.get("plotly_chart")) == 3
    caps = at.dataframe[0].value.set_index("setup")
    assert caps.loc["continuous", "capacity_req_s"] > 3 * caps.loc["none", "capacity_req_s"]
    assert caps.loc["none", "ci_low"] < caps.loc["none", "capacity_req_s"] < caps.loc["none", "ci_high"]
    assert len(at.dataframe[1].value) == 16
    assert at.query_params["sweep"] == ["s1"] or at.query_params["sweep"] == "s1"
    assert len(at.get("download_button")) == 3  # capacity, latency against load, points


def test_sweeps_page_without_sweeps_says_how_to_start_one(tmp_path, monkeypatch):
    connect_write(tmp_path / "e.duckdb").close()
    monkeypatch.setenv("SERVELAB_STORE", str(tmp_path / "e.duckdb"))
    clear_caches()
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception
    assert "servelab sweep" in at.info[0].value
