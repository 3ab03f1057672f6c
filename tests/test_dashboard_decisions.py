"""The Frontier, Levers, Recommend and Hardware and prices pages under AppTest, over a store
holding a sweep (tests/decision_fixtures.py); the Recommend page's figures against
`servelab recommend --json` on the same store and inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.data import clear_caches
from apptest_kit import no_errors, store  # noqa: F401 (a fixture)
import decision_fixtures as dfx
from dashboard.pricing import FIDELITY, OVERRIDES, PRICING

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "dashboard" / "app_pages"


def page(name: str, **state) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=60)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def cli(store: Path, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "servelab.cli", *args, "--store", str(store), "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)


def test_frontier_page_draws_the_cli_frontier_with_run_links(store):
    at = page("frontier")
    no_errors(at)
    assert len(at.get("plotly_chart")) == 1
    frame = at.dataframe[0].value
    want = cli(store, "frontier", dfx.SWEEP_ID)
    assert len(frame) == len(want["frontier"]["points"])
    got = {(r.setup, r.load): (r.usd_per_1m_output_tokens, r.pareto) for r in frame.itertuples()}
    for p in want["frontier"]["points"]:
        assert got[(p["setup"], p["load"])] == (pytest.approx(p["usd_per_1m_output_tokens"]), p["pareto"])
    assert frame["pareto"].any() and not frame["pareto"].all()
    assert frame["run"].str.startswith("run?run=r-").all()
    costs = at.dataframe[1].value.set_index("setup")
    for c in want["costs"]:
        assert costs.loc[c["setup"], "usd_per_1m_output_tokens"] == pytest.approx(c["usd_per_1m_output_tokens"]["value"])
    assert len(at.get("download_button")) == 2


def test_frontier_page_follows_a_session_override_and_the_percentile(store):
    base = page("frontier").dataframe[0].value.set_index(["setup", "load"])
    at = page("frontier", **{OVERRIDES: {"none": 1.0}})
    no_errors(at)
    at.selectbox[1].set_value("TPOT").run()  # selectboxes: sweep, latency, percentile, pricing
    no_errors(at)
    frame = at.dataframe[0].value.set_index(["setup", "load"])
    want = cli(store, "frontier", dfx.SWEEP_ID, "--latency", "tpot_p99", "--price-per-hour", "none=1.0")
    for p in want["frontier"]["points"]:
        assert frame.loc[(p["setup"], p["load"]), "latency_ms"] == pytest.approx(p["latency_ms"])
        assert frame.loc[(p["setup"], p["load"]), "usd_per_1m_output_tokens"] == pytest.approx(
            p["usd_per_1m_output_tokens"])
    none = frame.xs("none", level="setup")["usd_per_1m_output_tokens"]
    assert (none / base.xs("none", level="setup")["usd_per_1m_output_tokens"]).round(9).eq(2.0).all()
    assert "--price-per-hour none=1.0" in " ".join(c.value for c in at.caption)


def test_frontier_page_under_spot_names_the_setup_without_a_price(store):
    at = page("frontier", **{PRICING: "spot"})
    no_errors(at)
    assert "int8" in at.warning[0].value and "spot" in at.warning[0].value
    assert set(at.dataframe[0].value.dropna(subset=["usd_per_1m_output_tokens"])["setup"]) == {"none", "continuous"}


def test_levers_page_shows_the_attribution_with_intervals_and_fidelity(store):
    report = {"int8": {"exact_match_rate": 0.75, "token_agreement": 0.9, "mean_first_divergence": 20.0,
                       "token_unit": "ids"}}
    at = page("levers", **{FIDELITY: report})
    no_errors(at)
    shown = at.dataframe[0].value.set_index("setup")
    want = cli(store, "frontier", dfx.SWEEP_ID, "--baseline", "none")["attribution"]["rows"]
    for r in want:
        ratio = r["capacity_ratio"]
        assert shown.loc[r["setup"], "capacity"].startswith(f"{ratio['value']:.2f}x [{ratio['ci_low']:.2f}, ")
    assert shown.loc["int8", "fidelity"] == 0.75
    assert shown["fidelity"].isna().sum() == 1  # continuous: no report
    assert "no measurable change" in " ".join(shown["TTFT p99"]) or "no measurable change" in " ".join(shown["$/1M out"])
    assert len(at.get("plotly_chart")) == 1 and len(at.get("download_button")) == 1
    at.selectbox[1].set_value("continuous").run()
    no_errors(at)
    assert set(at.dataframe[0].value["setup"]) == {"none", "int8"}


def test_levers_page_without_fidelity_reports_says_where_they_come_from(store):
    at = page("levers")
    no_errors(at)
    assert "fidelity" not in at.dataframe[0].value.columns
    assert "servelab fidelity" in " ".join(c.value for c in at.caption)


RECOMMEND_CASES = [
    ({}, {"traffic": 20.0}, []),
    ({OVERRIDES: {"int8": 0.3}}, {"traffic": 35.0, "headroom": 0.25}, ["--price-per-hour", "int8=0.3"]),
    ({PRICING: "spot"}, {"traffic": 5.0, "slo": "ttft_p99<=300ms"}, ["--pricing", "spot"]),
]


@pytest.mark.parametrize("state,inputs,flags", RECOMMEND_CASES)
def test_recommend_page_gives_the_cli_answer(store, state, inputs, flags):
    at = page("recommend", **state)
    no_errors(at)
    at.number_input[0].set_value(inputs["traffic"])
    if "headroom" in inputs:
        at.number_input[1].set_value(inputs["headroom"])
    if "slo" in inputs:
        at.text_input[0].set_value(inputs["slo"])
    at.run()
    want = cli(store, "recommend", dfx.SWEEP_ID, "--traffic", f"{inputs['traffic']:g}",
               "--headroom", f"{inputs.get('headroom', 0.1):g}", *(["--slo", inputs["slo"]] if "slo" in inputs else []),
               *flags)
    if want["setup"] is None:
        assert at.error and "No setup serves" in at.error[0].value
        return
    no_errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["recommended"] == f"{want['setup']} x {want['replicas']}"
    assert metrics["$/hour"] == (f"${want['usd_per_hour']:.4g}" if want["usd_per_hour"] < 100
                                 else f"${want['usd_per_hour']:,.2f}")
    frame = at.dataframe[0].value.set_index("setup")
    assert frame.loc[want["setup"], "outcome"] == "recommended"
    assert frame.loc[want["setup"], "usd_per_hour"] == pytest.approx(want["usd_per_hour"])
    assert frame.loc[want["setup"], "replicas"] == want["replicas"]
    for r in want["rejected"]:
        assert frame.loc[r["setup"], "reason"] == r["reason"]
        if r.get("usd_per_hour") is not None:
            assert frame.loc[r["setup"], "usd_per_hour"] == pytest.approx(r["usd_per_hour"])
    reasoning = " ".join(m.value for m in at.markdown)
    assert f"= **{want['replicas']}**" in reasoning
    assert f"{want['planning_capacity_req_s']:.3g} req/s" in reasoning
    if want["runner_up"]:
        assert frame.loc[want["runner_up"]["setup"], "outcome"] == "runner-up"
        assert want["runner_up"]["setup"] in " ".join(m.value for m in at.markdown)


def test_recommend_page_min_fidelity_rejects_a_setup_that_changes_answers(store):
    report = {"int8": {"exact_match_rate": 0.75, "token_agreement": 0.9, "mean_first_divergence": 20.0,
                       "token_unit": "ids"}}
    at = page("recommend", **{FIDELITY: report, OVERRIDES: {"int8": 0.1}})
    no_errors(at)
    assert at.metric[0].value.startswith("int8")
    at.checkbox[0].check().run()
    no_errors(at)
    assert not at.metric[0].value.startswith("int8")
    reasons = at.dataframe[0].value.set_index("setup")["reason"]
    assert "changes answers" in reasons["int8"]


def test_prices_page_lists_the_catalog_and_sets_an_override(store):
    at = page("prices")
    no_errors(at)
    catalog = at.dataframe[0].value
    assert catalog["read_on"].notna().any() and catalog["source"].str.startswith("http").any()
    g5 = catalog[(catalog["sku"] == "aws-g5.xlarge") & (catalog["pricing"] == "on-demand")].iloc[0]
    assert g5["usd_per_hour"] == pytest.approx(1.006)
    at.selectbox[0].set_value("continuous")
    at.number_input[0].set_value(2.5)
    at.button[0].click().run()
    no_errors(at)
    assert at.session_state[OVERRIDES] == {"continuous": 2.5}
    effect = at.dataframe[-1].value.set_index("setup")
    assert effect.loc["continuous", "usd_per_hour"] == 2.5
    assert "session override" in effect.loc["continuous", "as of / source"]


def test_decision_pages_without_sweeps_say_how_to_start_one(tmp_path, monkeypatch):
    from store.schema import connect_write

    connect_write(tmp_path / "e.duckdb").close()
    monkeypatch.setenv("SERVELAB_STORE", str(tmp_path / "e.duckdb"))
    clear_caches()
    for name in ("frontier", "levers", "recommend"):
        at = page(name)
        assert not at.exception
        assert "servelab sweep" in at.info[0].value
    at = page("prices")
    no_errors(at)
    assert len(at.dataframe) >= 1


def test_recommend_page_bad_slo_is_one_error_line(store):
    at = page("recommend")
    at.text_input[0].set_value("ttft_p99<=fast").run()
    assert not at.exception
    assert len(at.error) == 1 and "ttft_p99<=fast" in at.error[0].value
