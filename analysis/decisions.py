"""The decision reports over a sweep result, given its setups' prices: pure.

`frontier_report` is the object of `servelab frontier --json` (the frontier, the
attribution against a baseline, the cost at capacity); `judged` is a sweep judged again
against another SLO (analysis/rejudge.py) unless it is the one it was searched with. The CLI
(servelab/decisions.py) and the dashboard (dashboard/pricing.py) resolve prices their own way
(files and flags; session overrides) and call these, so both show the same numbers.
Problems are ValueError with a one-line message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analysis.attribution import attribution
from analysis.cost import setup_cost, setup_usd_per_hour
from analysis.frontier import frontier as pareto
from analysis.rejudge import rejudge
from analysis.slo import format_term, parse_slo


def frontier_report(sweep: dict, prices: Mapping[str, Mapping[str, Any]], latency: str = "ttft_p99",
                    baseline: str | None = None, slo_only: bool = False, spot_overhead: float = 0.05,
                    usd_per_kwh: float | None = None) -> dict[str, Any]:
    """{"frontier", "attribution", "costs", "prices"} of a sweep under these prices."""
    per_hour = {n: None if p.get("usd_per_hour") is None else setup_usd_per_hour(p, 1, spot_overhead)
                for n, p in prices.items()}
    names = [s.get("name") for s in sweep["setups"]]
    front = pareto(sweep, prices, latency, slo_only, spot_overhead)
    att = attribution(sweep, baseline or names[0], per_hour) if names else None
    costs = [setup_cost(s, prices[s["name"]], 1, spot_overhead, usd_per_kwh) for s in sweep["setups"]
             if prices[s["name"]].get("usd_per_hour") is not None]
    return {"frontier": front, "attribution": att, "costs": costs, "prices": dict(prices)}


def judged(sweep: dict, slo: str | None) -> dict:
    """The sweep as measured, or judged again against `slo` when that is another SLO."""
    terms = parse_slo(slo) if slo else []
    if not terms:
        return sweep
    wanted = ",".join(map(format_term, terms))
    try:
        searched = ",".join(map(format_term, parse_slo(sweep.get("slo"))))
    except ValueError:
        searched = None
    return sweep if searched == wanted else rejudge(sweep, terms, wanted)
