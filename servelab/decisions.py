"""The decision layer as a library: a sweep's frontier, attribution and recommendation, priced.

One place computes what `servelab frontier`, `servelab recommend`, `servelab demo` and the
dashboard show, from a sweep result object (servelab/sweeps.py) and the prices
(servelab/prices.py); the pure maths is in analysis/ (cost, frontier, attribution, recommend).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from servelab.errors import UserError


def frontier_report(sweep: dict, pricing: str = "on-demand", prices: str | None = None,
                    price_per_hour: Sequence[str] | None = None, latency: str = "ttft_p99",
                    baseline: str | None = None, slo_only: bool = False, spot_overhead: float = 0.05,
                    usd_per_kwh: float | None = None) -> dict[str, Any]:
    """{"frontier", "attribution", "costs", "prices"} of a sweep (`servelab frontier --json`)."""
    from analysis.attribution import attribution
    from analysis.cost import setup_cost, setup_usd_per_hour
    from analysis.frontier import frontier as pareto
    from servelab.prices import sweep_prices

    setup_prices = sweep_prices(sweep, pricing, prices, price_per_hour)
    per_hour = {n: None if p.get("usd_per_hour") is None else setup_usd_per_hour(p, 1, spot_overhead)
                for n, p in setup_prices.items()}
    names = [s.get("name") for s in sweep["setups"]]
    try:
        front = pareto(sweep, setup_prices, latency, slo_only, spot_overhead)
        att = attribution(sweep, baseline or names[0], per_hour) if names else None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    costs = [setup_cost(s, setup_prices[s.get("name")], 1, spot_overhead, usd_per_kwh) for s in sweep["setups"]
             if setup_prices[s.get("name")].get("usd_per_hour") is not None]
    return {"frontier": front, "attribution": att, "costs": costs, "prices": setup_prices}


def recommend_report(sweep: dict, traffic: float, pricing: str = "on-demand", prices: str | None = None,
                     price_per_hour: Sequence[str] | None = None, headroom: float = 0.1,
                     spot_overhead: float = 0.05, fidelity: dict | None = None,
                     min_fidelity: float | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the recommendation object of `servelab recommend --json`, the setups' prices)."""
    from analysis.recommend import recommend as plan
    from servelab.prices import sweep_prices

    setup_prices = sweep_prices(sweep, pricing, prices, price_per_hour)
    try:
        rec = plan(sweep, traffic, setup_prices, headroom=headroom, fidelity=fidelity or {},
                   min_fidelity=min_fidelity, spot_overhead=spot_overhead)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return rec, setup_prices
