"""A capacity plan from a sweep and a traffic source: the object `servelab plan --json` prints.

Orchestration over analysis/plan.py (the arithmetic), servelab/prices.py (prices under every
pricing, each with its date and source), analysis/recommend.py (which setup, by default) and
servelab/plan_traffic.py (the traffic). The dashboard's Capacity plan page calls `make_plan`
too, so both show the same numbers. The validation replay is servelab/plan_validate.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from servelab.errors import UserError
from servelab.plan_traffic import Traffic


def prices_by_setup(sweep: dict, prices_file: str | None = None, flags: Sequence[str] | None = None,
                    catalog: dict | None = None, today: str | None = None) -> dict[str, dict[str, Any]]:
    """{setup: {pricing: price}} under every pricing (the plan compares them)."""
    import datetime

    from analysis.prices import PRICINGS, resolve_prices
    from servelab.prices import load_catalog

    catalog = catalog if catalog is not None else load_catalog(prices_file)
    today = today or datetime.date.today().isoformat()
    try:
        per = {p: resolve_prices(sweep, catalog, p, flags, today) for p in PRICINGS}
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return {str(s["name"]): {p: per[p][str(s["name"])] for p in PRICINGS} for s in sweep.get("setups") or []}


def choose_setup(sweep: dict, wanted: str | None, peak: float, prices: dict, pricing: str,
                 headroom: float) -> tuple[str, str]:
    """(setup name, why it was chosen): --setup, else what `servelab recommend` picks at the peak."""
    from analysis.recommend import planning_capacity, recommend

    names = [str(s["name"]) for s in sweep.get("setups") or []]
    if wanted is not None:
        if wanted not in names:
            raise UserError(f"--setup {wanted!r} is not a setup of sweep {sweep.get('sweep_id')}: "
                            f"use one of {', '.join(names)}")
        return wanted, "--setup"
    rec = recommend(sweep, peak, {n: p[pricing] for n, p in prices.items()}, headroom=headroom)
    if rec["setup"] is not None:
        return rec["setup"], f"the recommendation at the peak ({peak:.4g} req/s, {pricing})"
    caps: dict[str, float] = {}
    for s in sweep.get("setups") or []:
        cap = planning_capacity(s)[0]
        if cap:
            caps[str(s["name"])] = cap
    if not caps:
        raise UserError(f"no setup of sweep {sweep.get('sweep_id')} met the SLO at any load: nothing to plan with")
    best = max(caps, key=lambda n: caps[n])
    return best, "no setup has a price: the one with the highest capacity (pass --price-per-hour NAME=USD)"


def make_plan(sweep: dict, traffic: Traffic, setup: str | None = None, pricing: str = "on-demand",
              headroom: float = 0.1, growth: str | None = None, delay_s: float | None = None,
              prices: dict | None = None, spot_overhead: float = 0.05) -> dict[str, Any]:
    """The plan object (docs/architecture.md, "Capacity plans"); `prices` from prices_by_setup."""
    from analysis import plan as pure
    from servelab.prices import check_pricing

    check_pricing(pricing)
    if headroom < 0:
        raise UserError(f"bad --headroom {headroom}: must be >= 0 (a fraction of the traffic, e.g. 0.2)")
    try:
        grow = pure.parse_growth(growth)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    delay = pure.SCALE_UP_DELAY_S if delay_s is None else delay_s
    if not sweep.get("setups"):
        raise UserError(f"sweep {sweep.get('sweep_id')} has no setups")
    prices = prices if prices is not None else prices_by_setup(sweep)
    peak = max(traffic.rates)
    name, why = choose_setup(sweep, setup, peak, prices, pricing, headroom)
    plans = {str(s["name"]): pure.plan_setup(s, traffic.rates, traffic.bucket_s, prices[str(s["name"])], pricing,
                                             headroom, grow, delay, spot_overhead, traffic.mix)
             for s in sweep["setups"]}
    chosen = plans[name]
    if chosen.get("reason"):
        raise UserError(f"setup {name} cannot be planned: {chosen['reason']}")
    return {**chosen, "choice": why, "sweep_id": sweep.get("sweep_id"), "sweep_name": sweep.get("name"),
            "slo": sweep.get("slo"), "traffic": traffic.as_dict(), "setups": [_row(p) for p in plans.values()],
            "validation": None}


def _row(p: dict[str, Any]) -> dict[str, Any]:
    """One setup in the comparison table: its peak fleet and monthly $, or why it cannot serve."""
    if p.get("reason"):
        return {"setup": p["setup"], "reason": p["reason"]}
    usd = p["usd_per_month"]
    return {"setup": p["setup"], "planning_capacity_req_s": p["planning_capacity_req_s"],
            "replicas_peak": p["replicas_peak"], "utilisation_peak": p["utilisation_peak"],
            "usd_per_month": {k: usd[k] for k in ("fixed", "autoscaled", "reserved_mix")},
            "prices_as_of": p["prices_as_of"], "price_missing": p["price_missing"]}
