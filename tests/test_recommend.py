"""analysis/recommend.py: the cheapest setup and replica count for a traffic, and why the rest lost."""

from __future__ import annotations

import math

import pytest

from analysis.recommend import planning_capacity, recommend, replicas_for
from tests.sweep_fixtures import point, setup, sweep


def price(usd, source="https://example.test/list", as_of="2026-12-01"):
    return {"usd_per_hour": usd, "pricing": "on-demand", "source": source, "as_of": as_of}


SMALL = setup("small", [2.1, 2.2, 2.3], (2.0, 2.4))    # cheap, small capacity
BIG = setup("big", [8.2, 8.5, 8.8], (8.0, 9.0))        # dearer, 4x the capacity
PRICES = {"small": price(1.0), "big": price(3.0)}


@pytest.mark.parametrize("traffic", [0.5, 1.5, 3.9, 5.5, 7.5, 12.0, 30.0])
def test_recommendation_flips_with_traffic(traffic):
    rec = recommend(sweep(SMALL, BIG), traffic, PRICES, headroom=0.0)
    n_small, n_big = math.ceil(traffic / 2.0), math.ceil(traffic / 8.0)   # from ci_low, the conservative end
    cost = {"small": n_small * 1.0, "big": n_big * 3.0}
    # cheaper per hour wins; a tie goes to the larger planned capacity (big)
    want = "small" if cost["small"] < cost["big"] else "big"
    assert rec["setup"] == want
    assert rec["replicas"] == {"small": n_small, "big": n_big}[want]
    assert rec["usd_per_hour"] == pytest.approx(cost[want])
    assert rec["usd_per_month"] == pytest.approx(cost[want] * 730)
    other = "big" if want == "small" else "small"
    assert rec["runner_up"]["setup"] == other
    assert [r["setup"] for r in rec["rejected"]] == [other]
    if cost["small"] == cost["big"]:  # the tie-break is said, not "+$0/h (+0%)"
        assert rec["rejected"][0]["reason"] == (
            f"costs the same ({n_small} copies at ${cost['small']:g}/h); big holds more at the planning "
            f"capacity ({n_big * 8:g} vs {n_small * 2:g} req/s)")
    else:
        assert rec["rejected"][0]["reason"].startswith("costs more")
    assert rec["rejected"][0]["prices_as_of"] == "2026-12-01"   # a $ figure in a reason names its prices
    assert rec["prices_as_of"] == "2026-12-01" and rec["prices_source"] == "https://example.test/list"


def test_flip_points_at_known_traffics():
    s = sweep(SMALL, BIG)
    assert recommend(s, 1.0, PRICES, headroom=0.0)["setup"] == "small"      # 1 x $1 < 1 x $3
    assert recommend(s, 4.0, PRICES, headroom=0.0)["replicas"] == 2          # 2 x $1
    assert recommend(s, 7.0, PRICES, headroom=0.0)["setup"] == "big"        # 4 x $1 > 1 x $3


def test_headroom_adds_replicas():
    s = sweep(SMALL, BIG)
    assert recommend(s, 2.0, PRICES, headroom=0.0)["replicas"] == 1
    rec = recommend(s, 2.0, PRICES, headroom=0.25)                          # 2.5 req/s planned
    assert (rec["setup"], rec["replicas"]) == ("small", 2)
    assert rec["headroom"] == 0.25
    assert replicas_for(4.0, 2.0, 0.0) == 2 and replicas_for(0.01, 2.0, 0.0) == 1


def test_json_shape_and_token_price_at_the_traffic():
    rec = recommend(sweep(SMALL, BIG), 1.0, PRICES, headroom=0.0)
    for key in ("setup", "replicas", "capacity_req_s", "usd_per_hour", "usd_per_month", "usd_per_1m_output_tokens",
                "runner_up", "rejected", "prices_as_of"):
        assert key in rec
    assert set(rec["capacity_req_s"]) == {"value", "ci_low", "ci_high"}
    assert rec["usd_per_1m_output_tokens"] == pytest.approx(1.0 / (1.0 * 64 * 3600) * 1e6)


def test_setups_that_miss_the_slo_or_have_no_price_are_rejected_with_why():
    never = setup("never", None, bound="below")
    unpriced = setup("unpriced", [5.0, 5.0], (5.0, 5.0))
    rec = recommend(sweep(SMALL, never, unpriced), 1.0, {"small": price(1.0), "unpriced": None}, headroom=0.0)
    reasons = {r["setup"]: r["reason"] for r in rec["rejected"]}
    assert rec["setup"] == "small"
    assert reasons["never"] == "misses the SLO at every load measured"
    assert "--price-per-hour unpriced=USD" in reasons["unpriced"]
    assert rec["runner_up"] is None


def test_no_interval_plans_with_the_value_and_above_bound_with_highest_met_load():
    plain = setup("plain", [3.0], None)
    assert planning_capacity(plain) == (3.0, "value")
    above = setup("above", [], bound="above", points=[point(0, 1.0, True, 50), point(0, 6.0, True, 90)])
    cap, basis = planning_capacity(above)
    assert cap == 6.0 and "lower bound" in basis


def test_min_fidelity_excludes_setups_that_change_answers():
    fid = {"big": {"exact_match_rate": 0.5, "token_agreement": 0.8}}
    s = sweep(SMALL, BIG)
    assert recommend(s, 7.0, PRICES, headroom=0.0, fidelity=fid)["setup"] == "big"
    rec = recommend(s, 7.0, PRICES, headroom=0.0, fidelity=fid, min_fidelity=0.9)
    assert rec["setup"] == "small" and rec["replicas"] == 4
    assert "changes answers" in {r["setup"]: r["reason"] for r in rec["rejected"]}["big"]
    assert recommend(s, 7.0, PRICES, headroom=0.0, fidelity=fid)["changes_answers"] is True


def test_nothing_can_serve():
    rec = recommend(sweep(setup("never", None, bound="below")), 1.0, {}, headroom=0.0)
    assert rec["setup"] is None and rec["rejected"][0]["setup"] == "never"
    with pytest.raises(ValueError):
        recommend(sweep(SMALL), 0.0, PRICES)
