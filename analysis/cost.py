"""The cost model: dollars per hour of a setup and per unit of work at its capacity within the SLO.

Pure functions over plain numbers and the sweep result's dicts (docs/metrics.md, "Cost",
has every formula). A price is a dict made by `servelab.prices` (`usd_per_hour`, `pricing`,
`source`, `as_of`, ...); every figure computed here carries that price's `source` and
`as_of`, so no dollar figure travels without its date.

Intervals: a $ figure per unit of work falls as capacity rises, so the capacity interval's
low end gives the $ interval's high end and vice versa (`ci_low` of $ = price at
capacity `ci_high`). "Not applicable" is None, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

HOURS_PER_MONTH = 730.0  # 8760 h / 12: the convention cloud price pages use
HOURS_PER_YEAR = 8760.0
PRICINGS = ("on-demand", "spot", "reserved-1y", "reserved-3y")
COMMITMENT_YEARS = {"reserved-1y": 1, "reserved-3y": 3}
DEFAULT_SPOT_OVERHEAD = 0.05


def spot_effective(usd_per_hour: float, overhead: float = DEFAULT_SPOT_OVERHEAD) -> float:
    """A spot replica's price per hour of serving, counting the time interruptions take away.

    Formula: usd_eff = usd_spot / (1 - f), f = fraction of hours a spot replica is not
    serving (interrupted, replaced, warming up); to serve the same load you pay for 1/(1-f)
    as many replica-hours.
    """
    if not 0 <= overhead < 1:
        raise ValueError(f"spot overhead must be in [0, 1), got {overhead}")
    return usd_per_hour / (1.0 - overhead)


def setup_usd_per_hour(price: Mapping[str, Any], replicas: int = 1,
                       spot_overhead: float = DEFAULT_SPOT_OVERHEAD) -> float:
    """Dollars per hour of `replicas` copies of a setup.

    Formula: usd_per_hour = replicas * price_per_hour (spot: price_per_hour / (1 - f))
    """
    per = price["usd_per_hour"]
    if price.get("pricing") == "spot":
        per = spot_effective(per, spot_overhead)
    return replicas * per


def commitment_usd(price: Mapping[str, Any], replicas: int = 1) -> float | None:
    """What a reserved term commits you to, used or not; None for on-demand and spot.

    Formula: commitment = replicas * price_per_hour * 8760 * years
    """
    years = COMMITMENT_YEARS.get(price.get("pricing", ""))
    return None if years is None else replicas * price["usd_per_hour"] * HOURS_PER_YEAR * years


def usd_per_unit(usd_per_hour: float, units_per_s: float | None, per: float) -> float | None:
    """Dollars per `per` units of work (tokens, requests) at a steady rate of units/s.

    Formula: usd = usd_per_hour / (units_per_s * 3600) * per
    """
    if units_per_s is None or units_per_s <= 0 or not math.isfinite(units_per_s):
        return None
    return usd_per_hour / (units_per_s * 3600.0) * per


def _interval(usd_per_hour: float, rate: Mapping[str, Any] | None, per: float) -> dict[str, float | None]:
    """$ per `per` units at a rate interval {value, ci_low, ci_high}: the bounds swap."""
    rate = rate or {}
    return {"value": usd_per_unit(usd_per_hour, rate.get("value"), per),
            "ci_low": usd_per_unit(usd_per_hour, rate.get("ci_high"), per),
            "ci_high": usd_per_unit(usd_per_hour, rate.get("ci_low"), per)}


def _scaled(interval: Mapping[str, Any], factor: float | None) -> dict[str, float | None] | None:
    if factor is None or not interval:
        return None
    return {k: (None if interval.get(k) is None else interval[k] * factor) for k in ("value", "ci_low", "ci_high")}


def capacity_rates(setup: Mapping[str, Any]) -> dict[str, dict | None]:
    """The setup's capacity as request, output-token and total-token rates (intervals).

    Output tokens/s: the sweep's `capacity_output_tok_s` when given, else capacity_req_s
    * output_tokens_per_req. Total: capacity_req_s * (prompt + output tokens per request).
    """
    req: dict = setup.get("capacity_req_s") or {}
    out: dict | None = setup.get("capacity_output_tok_s") or None
    if not out or out.get("value") is None:
        out = _scaled(req, setup.get("output_tokens_per_req"))
    prompt, output = setup.get("prompt_tokens_per_req"), setup.get("output_tokens_per_req")
    total = _scaled(req, None if prompt is None or output is None else prompt + output)
    return {"req_s": req, "output_tok_s": out, "total_tok_s": total}


def setup_cost(setup: Mapping[str, Any], price: Mapping[str, Any], replicas: int = 1,
               spot_overhead: float = DEFAULT_SPOT_OVERHEAD, usd_per_kwh: float | None = None) -> dict[str, Any]:
    """Every $ figure of one setup at its capacity within the SLO, with intervals.

    Formulas (docs/metrics.md): usd_per_1m_output_tokens = usd_per_hour / (output_tok_s *
    3600) * 1e6 at capacity; per 1M total tokens likewise with total_tok_s; per 1k requests
    = usd_per_hour / (req_s * 3600) * 1e3; energy as in `energy_cost`.
    """
    per_hour = setup_usd_per_hour(price, replicas, spot_overhead)
    rates = {k: _scaled(v or {}, replicas) for k, v in capacity_rates(setup).items()}
    return {
        "setup": setup.get("name"),
        "replicas": replicas,
        "pricing": price.get("pricing"),
        "usd_per_hour": per_hour,
        "usd_per_month": per_hour * HOURS_PER_MONTH,
        "commitment_usd": commitment_usd(price, replicas),
        "usd_per_1m_output_tokens": _interval(per_hour, rates["output_tok_s"], 1e6),
        "usd_per_1m_total_tokens": _interval(per_hour, rates["total_tok_s"], 1e6),
        "usd_per_1k_requests": _interval(per_hour, rates["req_s"], 1e3),
        "energy": energy_cost(setup, usd_per_kwh),
        "prices_as_of": price.get("as_of"),
        "prices_source": price.get("source"),
    }


def energy_cost(setup: Mapping[str, Any], usd_per_kwh: float | None) -> dict[str, Any] | None:
    """Electricity $ where power was measured: at the highest SLO-meeting load with a reading.

    Formula: usd_per_hour = power_w / 1000 * usd_per_kwh;
    usd_per_1m_output_tokens = energy_j_per_output_token * 1e6 / 3.6e6 * usd_per_kwh
    """
    if usd_per_kwh is None:
        return None
    measured = [p for p in setup.get("points") or [] if p.get("slo_met") and p.get("power_w") is not None]
    if not measured:
        return None
    top = max(measured, key=lambda p: p.get("req_s") or 0.0)
    j_tok = top.get("energy_j_per_output_token")
    return {"at_req_s": top.get("req_s"), "power_w": top["power_w"], "usd_per_kwh": usd_per_kwh,
            "usd_per_hour": top["power_w"] / 1000.0 * usd_per_kwh,
            "usd_per_1m_output_tokens": None if j_tok is None else j_tok * 1e6 / 3.6e6 * usd_per_kwh}


def point_usd_per_1m_output_tokens(usd_per_hour: float, point: Mapping[str, Any]) -> float | None:
    """$ per 1M output tokens at one measured load: its own output tokens/s."""
    return usd_per_unit(usd_per_hour, point.get("output_tok_s"), 1e6)
