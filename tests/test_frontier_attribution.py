"""analysis/frontier.py and analysis/attribution.py over sweep result dicts."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from analysis.attribution import attribution, common_load, ratio_interval, verdict
from analysis.frontier import frontier, parse_latency
from tests.sweep_fixtures import point, setup, sweep


def price(usd):
    return {"usd_per_hour": usd, "pricing": "on-demand", "source": "https://example.test/p", "as_of": "2026-12-01"}


def grid(name, caps, rates_lat, *, out_per_req=64.0, repeats=2):
    """A setup measured at the same rates in every repeat: rate -> (slo_met, ttft_p99)."""
    pts = [point(r, rate, met, lat, out_per_req=out_per_req) for r in range(repeats)
           for rate, (met, lat) in rates_lat.items()]
    return setup(name, caps, (min(caps), max(caps)), points=pts, out_per_req=out_per_req)


def test_frontier_marks_dominated_points_and_keeps_them():
    a = grid("a", [2.0, 2.0], {1.0: (True, 100.0), 2.0: (True, 200.0)})
    b = grid("b", [4.0, 4.0], {1.0: (True, 300.0), 2.0: (True, 150.0)})
    f = frontier(sweep(a, b), {"a": price(1.0), "b": price(1.0)}, latency="ttft_p99")
    rows = {(r["setup"], r["load"]): r for r in f["points"]}
    assert len(rows) == 4 and all(r["repeats"] == 2 for r in rows.values())
    # same price, same tokens/s at the same load: b at 1 req/s is a at 1 req/s but slower,
    # and b at 2 req/s is cheaper and faster still: the cheapest dominator is named
    assert rows[("b", 1.0)]["pareto"] is False
    assert rows[("b", 1.0)]["dominated_by"] == {"setup": "b", "load": 2.0}
    assert rows[("a", 2.0)]["pareto"] is False          # b at 2 req/s: same cost, faster
    assert rows[("a", 1.0)]["pareto"] and rows[("b", 2.0)]["pareto"]
    want = 1.0 / (2.0 * 64 * 3600) * 1e6
    assert rows[("b", 2.0)]["usd_per_1m_output_tokens"] == pytest.approx(want)
    assert rows[("b", 2.0)]["prices_as_of"] == "2026-12-01"


def test_frontier_without_price_or_outside_slo():
    a = grid("a", [2.0, 2.0], {1.0: (True, 100.0), 3.0: (False, 900.0)})
    f = frontier(sweep(a), {"a": None})
    assert all(r["pareto"] is None and r["usd_per_1m_output_tokens"] is None for r in f["points"])
    f = frontier(sweep(a), {"a": price(1.0)}, slo_only=True)
    assert [r["load"] for r in f["points"]] == [1.0]
    with pytest.raises(ValueError):
        parse_latency("ttft_p42")


def test_ratio_interval_matches_the_delta_method_by_hand():
    a, b = [7.6, 8.1, 8.0], [2.0, 2.1, 1.9]
    r = ratio_interval(a, b)
    ma, mb = sum(a) / 3, sum(b) / 3
    va = sum((x - ma) ** 2 for x in a) / 2
    vb = sum((x - mb) ** 2 for x in b) / 2
    ua, ub = va / (3 * ma * ma), vb / (3 * mb * mb)
    se = math.sqrt(ua + ub)
    df = se ** 4 / (ua ** 2 / 2 + ub ** 2 / 2)
    half = stats.t.ppf(0.975, df) * se
    assert r["value"] == pytest.approx(ma / mb)
    assert r["ci_low"] == pytest.approx(ma / mb * math.exp(-half))
    assert r["ci_high"] == pytest.approx(ma / mb * math.exp(half))
    assert ratio_interval([3.0], [1.0, 1.1])["ci_low"] is None
    assert verdict({"value": 1.0, "ci_low": 0.9, "ci_high": 1.1}, 1.0) == "no measurable change"
    assert verdict({"value": 2.0, "ci_low": 1.5, "ci_high": 2.5}, 1.0) == "higher"


def test_attribution_capacity_cost_and_latency_against_baseline():
    base = grid("none", [2.0, 2.1, 1.9], {1.0: (True, 400.0), 2.0: (True, 480.0)}, repeats=3)
    cont = grid("continuous", [7.6, 8.1, 8.0], {1.0: (True, 100.0), 2.0: (True, 120.0)}, repeats=3)
    same = grid("same", [1.9, 2.1, 2.0], {1.0: (True, 400.0), 2.0: (True, 480.0)}, repeats=3)
    att = attribution(sweep(base, cont, same), "none", {"none": 1.0, "continuous": 1.0, "same": 1.0})
    rows = {r["setup"]: r for r in att["rows"]}
    c = rows["continuous"]
    assert c["capacity_ratio"]["value"] == pytest.approx(sum([7.6, 8.1, 8.0]) / sum([2.0, 2.1, 1.9]))
    assert c["capacity_verdict"] == "higher"
    # equal prices: $/1M changes by 1/ratio - 1
    assert c["usd_per_1m_output_tokens_pct"]["value"] == pytest.approx(100 * (1 / c["capacity_ratio"]["value"] - 1))
    assert c["usd_per_1m_output_tokens_pct"]["ci_high"] < 0 and c["usd_verdict"] == "lower"
    assert c["latency_at"] == 2.0                       # the highest load both measured, baseline within SLO
    assert c["ttft_p99_pct"]["value"] == pytest.approx(100 * (120 / 480 - 1))
    assert rows["same"]["capacity_verdict"] == "no measurable change"
    assert rows["same"]["usd_verdict"] == "no measurable change"
    with pytest.raises(ValueError):
        attribution(sweep(base), "missing", {})


def test_latency_at_capacity_when_loads_differ():
    base = setup("b", [2.0, 2.0], (2.0, 2.0), points=[point(0, 1.5, True, 100), point(1, 1.7, True, 110)])
    other = setup("o", [4.0, 4.0], (4.0, 4.0), points=[point(0, 3.5, True, 50), point(1, 3.9, True, 60)])
    assert common_load(base, other) is None
    row = attribution(sweep(base, other), "b", {})["rows"][0]
    assert row["latency_at"] == "capacity"
    assert row["ttft_p99_pct"]["value"] == pytest.approx(100 * (55 / 105 - 1))
    assert row["usd_per_1m_output_tokens_pct"] is None and row["usd_verdict"] == "not measured"
