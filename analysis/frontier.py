"""The latency/cost frontier of a sweep: every (setup, load) point, the Pareto set marked.

One point per setup and load (repeats of the same load averaged): x = a latency
percentile (e.g. TTFT p99, ms), y = $ per 1M output tokens at that load's own output
tokens/s. A point is dominated when another is no worse on both and better on one; the
dominated points stay in the result, marked, with the point that dominates them. Pure:
prices come in as dicts from `servelab.prices` (docs/metrics.md, "Frontier").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from analysis.cost import point_usd_per_1m_output_tokens, setup_usd_per_hour

METRICS = ("ttft", "tpot", "itl", "e2e")
STATS = ("p50", "p90", "p95", "p99", "p999", "mean")


def parse_latency(text: str) -> tuple[str, str]:
    """`ttft_p99` -> ("ttft", "p99"); ValueError naming the valid choices otherwise."""
    metric, _, stat = text.strip().lower().rpartition("_")
    if metric not in METRICS or stat not in STATS:
        raise ValueError(f"bad latency {text!r}: use METRIC_STAT with METRIC in {', '.join(METRICS)} and "
                         f"STAT in {', '.join(STATS)}, e.g. ttft_p99")
    return metric, stat


def _load_key(p: Mapping[str, Any]) -> tuple[str, Any]:
    return ("users", p["users"]) if p.get("users") is not None else ("rate", p.get("rate") or p.get("offered_rate"))


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def setup_points(setup: Mapping[str, Any], latency: tuple[str, str], usd_per_hour: float | None) -> list[dict]:
    """One row per load of a setup: repeats of that load averaged."""
    groups: dict[tuple[str, float], list[Mapping[str, Any]]] = defaultdict(list)
    for p in setup.get("points") or []:
        if p.get("status", "completed") == "completed":
            groups[_load_key(p)].append(p)
    metric, stat = latency
    rows = []
    for (kind, load), pts in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        lat = _mean([(p.get(f"{metric}_ms") or {}).get(stat) for p in pts])
        out = _mean([p.get("output_tok_s") for p in pts])
        usd = None if usd_per_hour is None else point_usd_per_1m_output_tokens(usd_per_hour, {"output_tok_s": out})
        rows.append({"setup": setup.get("name"), "load_kind": kind, "load": load, "repeats": len(pts),
                     "req_s": _mean([p.get("req_s") for p in pts]), "output_tok_s": out,
                     "latency_ms": lat, "usd_per_1m_output_tokens": usd,
                     "slo_met": all(p.get("slo_met") is True for p in pts)})
    return rows


def _dominates(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    ax, ay, bx, by = a["latency_ms"], a["usd_per_1m_output_tokens"], b["latency_ms"], b["usd_per_1m_output_tokens"]
    return ax <= bx and ay <= by and (ax < bx or ay < by)


def pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Marks each row `pareto` True/False (None: a coordinate missing) and `dominated_by`."""
    full = [r for r in rows if r["latency_ms"] is not None and r["usd_per_1m_output_tokens"] is not None]
    ids = {id(r) for r in full}
    for r in rows:
        if id(r) not in ids:
            r["pareto"], r["dominated_by"] = None, None
            continue
        # the dominator with the lowest cost names the point to look at first
        by = sorted((q for q in full if q is not r and _dominates(q, r)),
                    key=lambda q: (q["usd_per_1m_output_tokens"], q["latency_ms"]))
        r["pareto"] = not by
        r["dominated_by"] = None if not by else {"setup": by[0]["setup"], "load": by[0]["load"]}
    return rows


def frontier(sweep: Mapping[str, Any], prices: Mapping[str, Mapping[str, Any] | None], latency: str = "ttft_p99",
             slo_only: bool = False, spot_overhead: float = 0.05) -> dict[str, Any]:
    """The frontier over every setup and load of a sweep.

    With `slo_only`, loads that missed the SLO are left out before the Pareto set is taken
    (a point that misses the SLO is not an operating point, however cheap)."""
    lat = parse_latency(latency)
    rows: list[dict[str, Any]] = []
    for setup in sweep.get("setups") or []:
        price = prices.get(setup.get("name"))
        per_hour = None if not price or price.get("usd_per_hour") is None else setup_usd_per_hour(
            price, 1, spot_overhead)
        for r in setup_points(setup, lat, per_hour):
            if not slo_only or r["slo_met"]:
                r["prices_as_of"] = price.get("as_of") if price else None
                r["prices_source"] = price.get("source") if price else None
                rows.append(r)
    return {"sweep_id": sweep.get("sweep_id"), "latency": latency, "slo": sweep.get("slo"),
            "points": pareto(rows)}
