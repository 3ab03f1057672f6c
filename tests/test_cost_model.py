"""analysis/cost.py: $ per hour of a setup and per unit of work at capacity, with intervals."""

from __future__ import annotations

import math

import pytest

from analysis.cost import commitment_usd, energy_cost, setup_cost, setup_usd_per_hour, spot_effective, usd_per_unit
from tests.sweep_fixtures import point, setup

PRICE = {"usd_per_hour": 2.0, "pricing": "on-demand", "source": "https://example.test/prices", "as_of": "2026-12-01"}


def test_usd_per_million_tokens_from_rate():
    # 2 $/h at 500 tok/s = 1.8M tok/h -> 1.111 $/1M
    assert usd_per_unit(2.0, 500.0, 1e6) == pytest.approx(2.0 / 1.8)
    assert usd_per_unit(2.0, 0.0, 1e6) is None
    assert usd_per_unit(2.0, None, 1e6) is None


def test_interval_swaps_bounds_and_carries_date_and_source():
    s = setup("a", [7.6, 8.1, 8.0], (7.2, 8.5), out_per_req=64.0, prompt_per_req=256.0)
    c = setup_cost(s, PRICE)
    out = c["usd_per_1m_output_tokens"]
    assert out["value"] == pytest.approx(2.0 / (s["capacity_req_s"]["value"] * 64 * 3600) * 1e6)
    # the low capacity end gives the high $ end
    assert out["ci_high"] == pytest.approx(2.0 / (7.2 * 64 * 3600) * 1e6)
    assert out["ci_low"] == pytest.approx(2.0 / (8.5 * 64 * 3600) * 1e6)
    assert out["ci_low"] < out["value"] < out["ci_high"]
    assert c["usd_per_1m_total_tokens"]["ci_high"] == pytest.approx(2.0 / (7.2 * 320 * 3600) * 1e6)
    assert c["usd_per_1k_requests"]["ci_high"] == pytest.approx(2.0 / (7.2 * 3600) * 1e3)
    assert c["usd_per_month"] == pytest.approx(2.0 * 730)
    assert (c["prices_as_of"], c["prices_source"]) == ("2026-12-01", "https://example.test/prices")
    assert c["commitment_usd"] is None and c["energy"] is None


def test_replicas_scale_the_hour_not_the_token_price():
    s = setup("a", [4.0, 4.0], (4.0, 4.0))
    one, three = setup_cost(s, PRICE, 1), setup_cost(s, PRICE, 3)
    assert three["usd_per_hour"] == pytest.approx(3 * one["usd_per_hour"])
    assert three["usd_per_1m_output_tokens"]["value"] == pytest.approx(one["usd_per_1m_output_tokens"]["value"])


def test_spot_overhead_and_reserved_commitment():
    assert spot_effective(1.0, 0.2) == pytest.approx(1.25)
    with pytest.raises(ValueError):
        spot_effective(1.0, 1.0)
    spot = dict(PRICE, pricing="spot")
    assert setup_usd_per_hour(spot, 2, spot_overhead=0.2) == pytest.approx(2 * 2.0 / 0.8)
    reserved = dict(PRICE, pricing="reserved-3y")
    assert commitment_usd(reserved, 2) == pytest.approx(2 * 2.0 * 8760 * 3)
    assert commitment_usd(PRICE, 2) is None


def test_no_capacity_means_no_token_price():
    s = setup("a", None, bound="below")
    c = setup_cost(s, PRICE)
    assert c["usd_per_1m_output_tokens"] == {"value": None, "ci_low": None, "ci_high": None}


def test_energy_cost_only_where_power_was_measured():
    pts = [point(0, 1.0, True, 100, power_w=200.0, j_per_tok=3.6), point(0, 2.0, True, 150, power_w=300.0, j_per_tok=1.8),
           point(0, 4.0, False, 900, power_w=350.0, j_per_tok=1.0)]
    e = energy_cost(setup("a", [2.0], points=pts), usd_per_kwh=0.25)
    assert e["at_req_s"] == 2.0  # the highest load that met the SLO, not the one that missed it
    assert e["usd_per_hour"] == pytest.approx(0.3 * 0.25)
    assert e["usd_per_1m_output_tokens"] == pytest.approx(1.8 * 1e6 / 3.6e6 * 0.25)
    assert energy_cost(setup("a", [2.0], points=[point(0, 1.0, True, 100)]), 0.25) is None
    assert energy_cost(setup("a", [2.0], points=pts), None) is None
    assert math.isfinite(e["usd_per_hour"])
