"""The capacity plan's arithmetic (analysis/plan.py) with plain numbers and sweep-shaped dicts."""

from __future__ import annotations

import math

import pytest

import sweep_fixtures as sf
from analysis import plan
from analysis.recommend import recommend


def _price(usd: float, pricing: str, as_of: str = "2026-12-03") -> dict:
    return {"usd_per_hour": usd, "pricing": pricing, "source": "test", "as_of": as_of}


PRICES = {"on-demand": _price(1.0, "on-demand"), "spot": _price(0.4, "spot"),
          "reserved-1y": _price(0.6, "reserved-1y"), "reserved-3y": _price(0.45, "reserved-3y")}


def test_bucket_rates_counts_per_interval_and_drops_a_short_tail():
    t = [0.5, 10, 59, 60, 61, 100, 130]  # 3 in [0,60), 3 in [60,120), 1 at 130 (tail of 10 s < 30 s)
    assert plan.bucket_rates(t, 60) == [3 / 60, 3 / 60]
    # a tail covering at least half an interval counts, over the seconds it covers
    assert plan.bucket_rates([0, 30, 60, 100], 60) == [2 / 60, 2 / 40]
    with pytest.raises(ValueError):
        plan.bucket_rates([], 60)


def test_densest_window_finds_the_burst():
    t = [0, 1, 2, 50, 50.5, 51, 51.5, 52, 90]
    assert plan.densest_window(t, 0, 100, 5) == 50
    assert plan.densest_window(t, 0, 4, 10) == 0  # the window is longer than the range


@pytest.mark.parametrize("text, rate, months", [("20%/quarter", 0.2, 3), ("5 % / month", 0.05, 1),
                                                ("100%/year", 1.0, 12)])
def test_parse_growth(text, rate, months):
    g = plan.parse_growth(text)
    assert g["rate"] == pytest.approx(rate) and g["period_months"] == months


@pytest.mark.parametrize("text", ["20", "20%/week", "fast", "-100%/year"])
def test_parse_growth_refuses(text):
    with pytest.raises(ValueError, match="--growth"):
        plan.parse_growth(text)


def test_provisioned_starts_replicas_ahead_of_need_and_wraps_round():
    need = [1, 1, 3, 1, 2]
    assert plan.provisioned(need, 60, 0) == need
    assert plan.provisioned(need, 60, 60) == [1, 3, 3, 2, 2]  # one interval ahead; the last sees the first
    assert plan.provisioned(need, 60, 90) == [3, 3, 3, 2, 2]  # 90 s: two intervals ahead


def test_reserved_mix_reserves_the_base_that_is_busy_often_enough():
    # 2 replicas all the time, a 3rd for a quarter of the time: reserving the 3rd (0.6 all month)
    # costs more than buying it by the hour a quarter of the time (1.0 x 0.25)
    mix = plan.reserved_mix([2, 2, 2, 3], reserved=0.6, flexible=1.0)
    assert mix["base"] == 2
    assert mix["usd"] == pytest.approx((2 * 0.6 + 0.25 * 1.0) * 730)
    assert plan.reserved_mix([2, 3], None, 1.0)["usd"] is None


def test_growth_horizon_solves_when_the_fleet_runs_out():
    g = plan.growth_horizon(peak=10, capacity=3, replicas=4, headroom=0.1, growth=plan.parse_growth("20%/quarter"))
    # headroom: 10 * 1.2^(t/3) * 1.1 = 12  ->  t = 3 ln(12/11) / ln 1.2
    assert g["months_to_headroom_used"] == pytest.approx(3 * math.log(12 / 11) / math.log(1.2))
    assert g["months_to_capacity"] == pytest.approx(3 * math.log(1.2) / math.log(1.2))
    assert [s["replicas"] for s in g["by_period"][:3]] == [4, 5, 6]
    assert plan.growth_horizon(10, 3, 4, 0.1, plan.parse_growth("0%/month"))["months_to_capacity"] is None


def test_length_mix_reports_differences_beyond_ten_percent():
    s = sf.setup("a", [5.0], out_per_req=32, prompt_per_req=256)
    near = plan.length_mix({"prompt_tokens_per_req": 270, "output_tokens_per_req": 32}, s)
    assert not near["differs"] and near["notes"] == []
    far = plan.length_mix({"prompt_tokens_per_req": 1024, "output_tokens_per_req": 30}, s)
    assert far["differs"] and far["prompt"]["change"] == pytest.approx(3.0)
    assert far["notes"] == ["prompt tokens per request: traffic 1024, measured 256 (+300%)"]
    assert "no lengths" in plan.length_mix(None, s)["notes"][0]


def test_plan_setup_agrees_with_the_recommendation_at_the_peak():
    s = sf.setup("a", [4.0, 5.0, 6.0], (4.2, 5.8), price=1.0)
    rates = [2.0, 9.5, 14.0, 6.0]
    p = plan.plan_setup(s, rates, 3600, PRICES, "on-demand", 0.2, delay_s=600)
    rec = recommend(sf.sweep(s), 14.0, {"a": PRICES["on-demand"]}, headroom=0.2)
    assert p["replicas_peak"] == rec["replicas"] == 4  # ceil(14 * 1.2 / 4.2)
    assert p["replicas_by_bucket"] == [1, 3, 4, 2]
    assert p["replicas_autoscaled"] == [3, 4, 4, 2]  # 600 s ahead: each hour also covers the next's start
    assert p["utilisation_peak"] == pytest.approx(14 / (4 * 4.2))
    usd = p["usd_per_month"]
    assert usd["fixed"] == pytest.approx(4 * 730)
    assert usd["autoscaled"] == pytest.approx(13 / 4 * 730)
    assert usd["by_pricing"]["spot"]["fixed"] == pytest.approx(4 * 0.4 / 0.95 * 730)
    assert usd["by_pricing"]["reserved-1y"]["autoscaled"] == usd["by_pricing"]["reserved-1y"]["fixed"]
    assert usd["reserved_mix"] <= usd["autoscaled"]
    assert p["prices_as_of"] == "2026-12-03"


def test_plan_setup_of_a_setup_that_never_met_the_slo():
    s = sf.setup("b", None, bound="below")
    assert "misses the SLO" in plan.plan_setup(s, [1.0], 3600, PRICES, "on-demand", 0.1)["reason"]


def test_by_hour_groups_minutes():
    assert plan.by_hour([1] * 59 + [3] + [2] * 60, 60) == [3, 2]


def test_validation_verdict():
    assert plan.validation_verdict({"slo_met": True}, {"slo_met": False}) == "holds"
    assert plan.validation_verdict({"slo_met": False}, {"slo_met": False}).startswith("fails")
    assert plan.validation_verdict({"slo_met": True}, {"slo_met": True}).startswith("holds (one fewer")
    assert plan.validation_verdict(None, None) == "not run"
