"""The capacity plan's arithmetic: replicas per interval of a traffic profile, and the monthly bill.

Pure: plain numbers and the sweep result's dicts in, the JSON object `servelab plan --json`
prints out. Reuses the recommendation's rules (analysis/recommend.py: `planning_capacity`,
`replicas_for`) and the cost model (analysis/cost.py); docs/metrics.md, "Capacity plan", has
every formula. A traffic profile is a list of arrival rates (req/s), one per interval of
`bucket_s` seconds (an hour, or a minute for a trace shorter than two hours); the profile is
taken to repeat (a day, or the trace's span, again and again), so its mean is the month's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from analysis.cost import HOURS_PER_MONTH, setup_usd_per_hour
from analysis.recommend import planning_capacity, replicas_for

SCALE_UP_DELAY_S = 600.0  # a new replica: instance start, image pull, model load, warm-up
LENGTH_MIX_TOLERANCE = 0.10  # a traffic mean this far from the measured one is reported
GROWTH_PERIOD_MONTHS = {"month": 1.0, "quarter": 3.0, "year": 12.0}
FLEXIBLE = ("on-demand", "spot")
RESERVED = ("reserved-1y", "reserved-3y")


def bucket_rates(t_s: Sequence[float], bucket_s: float) -> list[float]:
    """Arrival rate (req/s) per interval of `bucket_s` seconds, from arrival times (s, from 0).

    Formula: rate_k = count of t in [k*b, (k+1)*b) / b; a last interval shorter than half of b
    is dropped (too few seconds to give a rate), a longer one is divided by the seconds it covers.
    """
    if not len(t_s):
        raise ValueError("no arrivals to make a profile from")
    span = float(max(t_s))
    n = max(1, math.ceil(span / bucket_s)) if span > 0 else 1
    counts = [0] * (n + 1)
    for t in t_s:
        counts[min(int(float(t) // bucket_s), n)] += 1
    counts[n - 1] += counts[n]  # the very last arrival sits on the boundary
    covered = span - (n - 1) * bucket_s
    rates = [c / bucket_s for c in counts[: n - 1]]
    if n == 1 or covered >= bucket_s / 2:
        rates.append(counts[n - 1] / (covered if covered > 0 else bucket_s))
    return rates


def densest_window(t_s: Sequence[float], start: float, end: float, width: float) -> float:
    """Start of the `width`-second window within [start, end] holding the most arrivals."""
    inside = [float(t) for t in t_s if start <= t <= end]
    if not inside or end - start <= width:
        return start
    best, best_n, j = start, -1, 0
    for i, t0 in enumerate(inside):
        t0 = min(t0, end - width)
        while j < len(inside) and inside[j] < t0 + width:
            j += 1
        if j - i > best_n:
            best, best_n = t0, j - i
    return best


def parse_growth(text: str | None) -> dict[str, Any] | None:
    """`20%/quarter` -> {"rate": 0.2, "period_months": 3.0}; None for no growth; ValueError if bad."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*%\s*/\s*(month|quarter|year)\s*", text)
    if not m:
        raise ValueError(f"bad --growth {text!r}: expected PERCENT%/PERIOD, e.g. 20%/quarter (month, quarter, year)")
    rate = float(m.group(1)) / 100.0
    if rate <= -1:
        raise ValueError(f"bad --growth {text!r}: traffic cannot shrink by 100% or more")
    return {"rate": rate, "period_months": GROWTH_PERIOD_MONTHS[m.group(2)], "text": text.strip()}


def provisioned(needed: Sequence[int], bucket_s: float, delay_s: float = SCALE_UP_DELAY_S) -> list[int]:
    """Replicas an autoscaler keeps per interval when a new one takes `delay_s` to serve.

    Formula: provisioned_k = max(needed_k .. needed_{k+m}), m = ceil(delay_s / bucket_s): the
    replica needed at the start of interval j must be started delay_s earlier, so it is paid
    from then on; scale-down is immediate. The profile repeats, so the look-ahead wraps round.
    """
    n, m = len(needed), math.ceil(max(delay_s, 0.0) / bucket_s)
    return [max(needed[(k + i) % n] for i in range(min(m, n - 1) + 1)) for k in range(n)]


def _per_hour(price: Mapping[str, Any] | None, spot_overhead: float) -> float | None:
    if not price or price.get("usd_per_hour") is None:
        return None
    return setup_usd_per_hour(price, 1, spot_overhead)


def fleet_costs(needed: Sequence[int], auto: Sequence[int], prices: Mapping[str, Mapping[str, Any] | None],
                pricing: str, spot_overhead: float) -> dict[str, Any]:
    """Monthly $ of a fixed fleet, an autoscaled one and a reserved base plus flexible peaks.

    Formulas (730 h a month): fixed = peak * p * 730; autoscaled = mean(provisioned) * p * 730
    (p = the --pricing price; reserved hours are paid whether used or not, so a reserved
    autoscaled fleet costs the fixed one); reserved_mix = min over base b of
    b * p_res * 730 + mean(max(0, provisioned_k - b)) * p_flex * 730.
    """
    peak, mean_auto = max(needed), sum(auto) / len(auto)
    by_pricing = {}
    for name, price in prices.items():
        p = _per_hour(price, spot_overhead)
        fixed = None if p is None else peak * p * HOURS_PER_MONTH
        autoscaled = fixed if name in RESERVED or p is None else mean_auto * p * HOURS_PER_MONTH
        by_pricing[name] = {"fixed": fixed, "autoscaled": autoscaled, "usd_per_hour_per_replica": p,
                            "user_set": (price or {}).get("pricing") == "user-set"}
    chosen = by_pricing.get(pricing) or {}
    flex = pricing if pricing in FLEXIBLE else "on-demand"
    res = pricing if pricing in RESERVED else "reserved-1y"
    mix = reserved_mix(auto, _per_hour(prices.get(res), spot_overhead), _per_hour(prices.get(flex), spot_overhead))
    mix.update(reserved_pricing=res, flexible_pricing=flex)
    return {"fixed": chosen.get("fixed"), "autoscaled": chosen.get("autoscaled"), "reserved_mix": mix["usd"],
            "reserved_mix_detail": mix, "by_pricing": by_pricing}


def reserved_mix(auto: Sequence[int], reserved: float | None, flexible: float | None) -> dict[str, Any]:
    """The cheapest split: `base` replicas on a reserved term, the rest bought by the hour."""
    if reserved is None or flexible is None:
        return {"usd": None, "base": None, "missing": "no reserved price" if reserved is None else "no flexible price"}
    n = len(auto)
    best: dict[str, Any] = {}
    for base in range(max(auto) + 1):
        peaks = sum(max(0, a - base) for a in auto) / n
        usd = (base * reserved + peaks * flexible) * HOURS_PER_MONTH
        if not best or usd < best["usd"] - 1e-9:  # ties keep the smaller commitment
            best = {"usd": usd, "base": base, "mean_flexible_replicas": peaks}
    return best


def growth_horizon(peak: float, capacity: float, replicas: int, headroom: float,
                   growth: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """When the fleet sized for today's peak runs out as traffic grows.

    Formulas: traffic(t) = peak * (1 + g)^(t / period); headroom used up when traffic(t) *
    (1 + headroom) > replicas * capacity, i.e. t = period * ln(replicas * capacity / (peak *
    (1 + headroom))) / ln(1 + g); SLO at risk when traffic(t) > replicas * capacity.
    """
    if growth is None:
        return None
    g, period = growth["rate"], growth["period_months"]

    def months(limit: float) -> float | None:
        if g <= 0 or peak <= 0:
            return None  # never, at flat or falling traffic
        return max(0.0, period * math.log(limit / peak) / math.log1p(g))

    steps = []
    for k in range(0, 9):
        t = peak * (1.0 + g) ** k
        steps.append({"months": k * period, "peak_req_s": t, "replicas": replicas_for(t, capacity, headroom)})
    return {"growth": dict(growth), "months_to_headroom_used": months(replicas * capacity / (1.0 + headroom)),
            "months_to_capacity": months(replicas * capacity), "by_period": steps}


def length_mix(traffic: Mapping[str, float | None] | None, setup: Mapping[str, Any]) -> dict[str, Any]:
    """The traffic's mean prompt/output tokens against those the capacity was measured with.

    Formula: change = traffic_mean / measured_mean - 1, reported when |change| > 10%.
    """
    rows, notes = {}, []
    for key, label in (("prompt_tokens_per_req", "prompt"), ("output_tokens_per_req", "output")):
        measured = setup.get(key)
        got = (traffic or {}).get(key)
        change = None if not measured or got is None else got / measured - 1.0
        rows[label] = {"traffic": got, "measured": measured, "change": change}
        if change is not None and abs(change) > LENGTH_MIX_TOLERANCE:
            notes.append(f"{label} tokens per request: traffic {got:.0f}, measured {measured:.0f} "
                         f"({100 * change:+.0f}%)")
    if traffic is None:
        notes.append("the traffic source carries no lengths: taken to match the sweep's workload")
    return {**rows, "differs": any(abs(r["change"] or 0) > LENGTH_MIX_TOLERANCE for r in rows.values()),
            "notes": notes}


def by_hour(values: Sequence[int], bucket_s: float) -> list[int]:
    """The most replicas of each hour of the profile (intervals shorter than an hour grouped)."""
    per = max(1, round(3600.0 / bucket_s))
    return [max(values[i:i + per]) for i in range(0, len(values), per)]


def plan_setup(setup: Mapping[str, Any], rates: Sequence[float], bucket_s: float,
               prices: Mapping[str, Mapping[str, Any] | None], pricing: str, headroom: float,
               growth: Mapping[str, Any] | None = None, delay_s: float = SCALE_UP_DELAY_S,
               spot_overhead: float = 0.05, traffic_mix: Mapping[str, float | None] | None = None) -> dict[str, Any]:
    """The plan of one setup for a rate profile; {"setup", "reason"} when it cannot serve."""
    if not rates or any(r < 0 or not math.isfinite(r) for r in rates):
        raise ValueError("a traffic profile needs at least one rate, each >= 0 req/s")
    if headroom < 0:
        raise ValueError(f"headroom must be >= 0, got {headroom}")
    cap, basis = planning_capacity(setup)
    if cap is None:
        return {"setup": setup.get("name"), "reason": basis}
    needed = [replicas_for(r, cap, headroom) for r in rates]
    auto = provisioned(needed, bucket_s, delay_s)
    peak_rate, peak = max(rates), max(needed)
    price = prices.get(pricing)
    return {
        "setup": setup.get("name"), "planning_capacity_req_s": cap, "capacity_basis": basis,
        "capacity_req_s": setup.get("capacity_req_s"), "headroom": headroom, "bucket_s": bucket_s,
        "peak_req_s": peak_rate, "peak_index": rates.index(peak_rate), "mean_req_s": sum(rates) / len(rates),
        "replicas_peak": peak, "replicas_by_bucket": needed, "replicas_by_hour": by_hour(needed, bucket_s),
        "replicas_autoscaled": auto, "scale_up_delay_s": delay_s,
        "utilisation_peak": peak_rate / (peak * cap),
        "utilisation_mean_fixed": sum(rates) / len(rates) / (peak * cap),
        "utilisation_by_bucket": [r / (n * cap) for r, n in zip(rates, needed)],
        "pricing": pricing, "usd_per_month": fleet_costs(needed, auto, prices, pricing, spot_overhead),
        "prices_as_of": (price or {}).get("as_of"), "prices_source": (price or {}).get("source"),
        "price_missing": None if _per_hour(price, spot_overhead) is not None else (price or {}).get("missing"),
        "growth": growth_horizon(peak_rate, cap, peak, headroom, growth),
        "length_mix": length_mix(traffic_mix, setup),
    }


def validation_verdict(at_plan: Mapping[str, Any] | None, one_fewer: Mapping[str, Any] | None) -> str:
    """`holds`, `holds (one fewer also held)`, `fails` or `not run`, from the two runs' slo_met."""
    if not at_plan:
        return "not run"
    if not at_plan.get("slo_met"):
        return "fails: the SLO missed at the planned count"
    if one_fewer and one_fewer.get("slo_met"):
        return "holds (one fewer also held: the plan has more than the headroom to spare)"
    return "holds"
