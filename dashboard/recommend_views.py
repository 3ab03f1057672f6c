"""Presentation of the recommendation and of the price catalog: tables and the $/hour chart.

Pure over `servelab recommend --json`'s object (analysis/recommend.py) and the catalog dict
(servelab/prices.py `load_catalog`); no arithmetic of its own beyond the replica formula it
spells out with the recommendation's own numbers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboard.cost_views import interval_text, usd
from dashboard.views import CHART_HEIGHT
from analysis.prices import PRICINGS


BASIS = {"ci_low": "the low end of its 95% interval, to be safe",
         "value": "its mean over the repeats: there is no interval"}


def reasoning(rec: dict) -> list[str]:
    """Why this setup and this many copies, in the recommendation's own figures."""
    cap = rec["capacity_req_s"] or {}
    need = rec["traffic_req_s"] * (1 + rec["headroom"])
    lines = [
        f"One copy of **{rec['setup']}** serves {interval_text(cap)} req/s within `{rec.get('slo')}` "
        f"(capacity at the SLO, 95% interval); planned with **{rec['planning_capacity_req_s']:.3g} req/s** "
        f"({BASIS.get(rec['capacity_basis'], rec['capacity_basis'])}).",
        f"Copies = ceil({rec['traffic_req_s']:g} x (1 + {rec['headroom']:g}) / {rec['planning_capacity_req_s']:.3g}) "
        f"= ceil({need / rec['planning_capacity_req_s']:.3g}) = **{rec['replicas']}**.",
        f"{usd(rec['usd_per_hour'])}/hour ({rec.get('pricing')}), {usd(rec['usd_per_month'])}/month (730 h), "
        f"{usd(rec['usd_per_1m_output_tokens'])} per 1M output tokens at this traffic (idle headroom included); "
        f"prices as of {rec.get('prices_as_of')}, source: {rec.get('prices_source')}.",
        "It is the cheapest $/hour of the setups that can serve the traffic (ties: the larger planned capacity).",
    ]
    f = rec.get("fidelity") or {}
    if rec.get("changes_answers"):
        lines.append(f"Note: it changes answers: greedy outputs match the baseline on {f['exact_match_rate']:.0%} "
                     f"of prompts (token agreement {f['token_agreement']:.0%}).")
    return lines


def candidates_frame(rec: dict) -> pd.DataFrame:
    """Every setup: chosen, runner-up or rejected, with its $/hour where it had one, and why."""
    rows = []
    if rec["setup"] is not None:
        rows.append({"setup": rec["setup"], "outcome": "recommended", "replicas": rec["replicas"],
                     "usd_per_hour": rec["usd_per_hour"], "reason": "cheapest that serves the traffic",
                     "prices_as_of": rec["prices_as_of"], "prices_source": rec["prices_source"]})
    ru = (rec.get("runner_up") or {}).get("setup")
    for r in rec["rejected"]:
        rows.append({"setup": r["setup"], "outcome": "runner-up" if r["setup"] == ru else "rejected",
                     "replicas": (rec["runner_up"] or {}).get("replicas") if r["setup"] == ru else None,
                     "usd_per_hour": r.get("usd_per_hour"), "reason": r["reason"],
                     "prices_as_of": r.get("prices_as_of"), "prices_source": r.get("prices_source")})
    return pd.DataFrame(rows)


def candidates_chart(frame: pd.DataFrame) -> go.Figure:
    """$/hour of every setup that could serve the traffic, the recommended one highlighted."""
    sub = frame.dropna(subset=["usd_per_hour"]) if len(frame) else frame
    colors = {"recommended": "#2ca02c", "runner-up": "#1f77b4", "rejected": "#c7c7c7"}
    fig = go.Figure(go.Bar(
        x=sub.get("setup", []), y=sub.get("usd_per_hour", []),
        marker_color=[colors[o] for o in sub.get("outcome", [])],
        customdata=sub[["outcome", "reason"]].values if len(sub) else None,
        hovertemplate="%{x}: $%{y:.4g}/hour<br>%{customdata[0]}: %{customdata[1]}<extra></extra>"))
    fig.update_layout(height=CHART_HEIGHT, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="setup",
                      yaxis_title="$ per hour for the traffic (all copies)")
    return fig


def catalog_frame(catalog: dict) -> pd.DataFrame:
    """One row per SKU and pricing the catalog (with any prices file) gives a figure for."""
    rows = []
    for sku, entry in catalog["skus"].items():
        base = {"sku": sku, "provider": entry.get("provider"), "region": entry.get("region"),
                "accelerator": entry.get("accelerator"), "count": entry.get("count")}
        priced: list[tuple[str | None, dict[str, Any]]] = [
            (name, entry[key]) for name, key in PRICINGS.items() if isinstance(entry.get(key), dict)]
        for name, p in priced or [(None, {})]:
            rows.append({**base, "pricing": name, "usd_per_hour": p.get("usd_per_hour"),
                         "read_on": None if p.get("read_on") is None else str(p["read_on"]),
                         "approx": p.get("approx"), "source": p.get("source"),
                         "note": p.get("note") or (entry.get("note") if not priced else None)})
    return pd.DataFrame(rows)
