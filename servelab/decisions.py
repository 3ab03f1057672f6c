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
    from analysis import decisions
    from servelab.prices import sweep_prices

    setup_prices = sweep_prices(sweep, pricing, prices, price_per_hour)
    try:
        return decisions.frontier_report(sweep, setup_prices, latency, baseline, slo_only, spot_overhead,
                                         usd_per_kwh)
    except ValueError as exc:
        raise UserError(str(exc)) from None


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


def judged(sweep: dict, slo: str | None) -> dict:
    """The sweep, judged again against `slo` if it is another SLO (`recommend --slo`)."""
    from analysis import decisions

    try:
        return decisions.judged(sweep, slo)
    except ValueError as exc:
        raise UserError(str(exc)) from None
