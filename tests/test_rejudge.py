"""analysis/rejudge.py: a sweep's points and capacities judged against another SLO."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from analysis.rejudge import point_meets, rejudge
from analysis.slo import parse_slo
from tests.sweep_fixtures import point, setup, sweep


def test_capacity_is_the_highest_met_load_below_the_first_miss():
    pts = [point(r, rate, True, lat) for r, lats in enumerate([(100, 200, 300, 120), (100, 260, 300, 120)])
           for rate, lat in zip((1.0, 2.0, 3.0, 4.0), lats)]
    out = rejudge(sweep(setup("a", [4.0, 4.0], (4.0, 4.0), points=pts)), parse_slo("ttft_p99<=250ms"),
                  "ttft_p99<=250ms")
    a = out["setups"][0]
    # repeat 0 misses first at 3 req/s (4 req/s met again does not count), repeat 1 at 2 req/s
    assert a["capacity_req_s"]["repeats"] == [2.0, 1.0]
    half = stats.t.ppf(0.975, 1) * math.sqrt(0.5) / math.sqrt(2)
    assert a["capacity_req_s"]["ci_low"] == pytest.approx(1.5 - half)
    assert a["capacity_output_tok_s"]["value"] == pytest.approx(1.5 * 64)
    assert out["slo"] == "ttft_p99<=250ms" and out["slo_searched"] == sweep()["slo"]
    assert [p["slo_met"] for p in a["points"][:4]] == [True, True, False, True]


def test_bounds_and_unrecorded_terms():
    pts = [point(0, 1.0, True, 100), point(0, 2.0, True, 150)]
    s = sweep(setup("a", [2.0], points=pts))
    assert rejudge(s, parse_slo("ttft_p99<=500ms"), "x")["setups"][0]["capacity_req_s"]["bound"] == "above"
    assert rejudge(s, parse_slo("ttft_p99<=50ms"), "x")["setups"][0]["capacity_req_s"]["bound"] == "below"
    with pytest.raises(ValueError, match="not recorded"):
        point_meets(pts[0], parse_slo("ttft_p75<=50ms"))
    assert point_meets(pts[0], parse_slo("itl_p99<=50ms")) is None
