"""The capacity plan's three charts, as plotly figures made from the plan object alone.

The dashboard's Capacity plan page shows them and the offline HTML report
(servelab/plan_report.py) inlines them, so both draw the same charts from the same numbers
(the object `servelab plan --json` prints). No arithmetic here beyond axis positions.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from analysis.prices import PRICINGS

HEIGHT = 340
MAX_CAPACITY_LINES = 8  # more replica counts than this: only the top ones are drawn
MIX_COLOR, FIXED_COLOR, AUTO_COLOR = "#2ca02c", "#1f77b4", "#ff7f0e"


def _x(plan: dict[str, Any], n: int) -> tuple[list[float], str]:
    """Interval edges (n + 1), in hours (hourly profile) or minutes (per-minute profile)."""
    b = plan["bucket_s"]
    if b >= 3600:
        return [k * b / 3600 for k in range(n + 1)], "hour of the profile"
    return [k * b / 60 for k in range(n + 1)], "minute of the profile"


def _steps(values: list) -> list:
    """A step line's y: each interval's value, the last repeated to close its interval."""
    return [*values, values[-1]]


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=HEIGHT, margin=dict(l=50, r=20, t=50, b=40),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def traffic_figure(plan: dict[str, Any]) -> go.Figure:
    """The traffic over the profile, and what 1..N replicas hold within the SLO (planning capacity)."""
    rates = plan["traffic"]["rates_req_s"]
    x, label = _x(plan, len(rates))
    fig = go.Figure(go.Scatter(x=x, y=_steps(rates), mode="lines", line_shape="hv", name="traffic (req/s)"))
    cap, peak = plan["planning_capacity_req_s"], plan["replicas_peak"]
    for k in range(max(1, peak - MAX_CAPACITY_LINES + 1), peak + 1):
        fig.add_trace(go.Scatter(x=[x[0], x[-1]], y=[k * cap, k * cap], mode="lines", name=f"{k} replica(s)",
                                 line=dict(dash="dot", width=1)))
    return _layout(fig, f"Traffic and the capacity of 1..{peak} replicas of {plan['setup']}", label, "req/s")


def replicas_figure(plan: dict[str, Any]) -> go.Figure:
    """Replicas needed per interval, and those an autoscaler with the scale-up delay keeps."""
    need, auto = plan["replicas_by_bucket"], plan["replicas_autoscaled"]
    x, label = _x(plan, len(need))
    fig = go.Figure([go.Scatter(x=x, y=_steps(need), line_shape="hv", name="needed"),
                     go.Scatter(x=x, y=_steps(auto), line_shape="hv", name=f"autoscaled (starts "
                                f"{plan['scale_up_delay_s']:g} s ahead)", line=dict(dash="dash")),
                     go.Scatter(x=[x[0], x[-1]], y=[plan["replicas_peak"]] * 2, name="fixed fleet",
                                mode="lines", line=dict(dash="dot"))])
    fig.update_yaxes(rangemode="tozero", dtick=1 if plan["replicas_peak"] <= 12 else None)
    return _layout(fig, "Replicas per interval", label, "replicas")


def cost_figure(plan: dict[str, Any]) -> go.Figure:
    """Monthly $ of the fixed and autoscaled fleets under each pricing, and the reserved mix."""
    usd = plan["usd_per_month"]
    by = usd["by_pricing"]
    names = [p for p in PRICINGS if by.get(p, {}).get("fixed") is not None]
    fig = go.Figure([go.Bar(x=names, y=[by[p]["fixed"] for p in names], name="fixed fleet", marker_color=FIXED_COLOR),
                     go.Bar(x=names, y=[by[p]["autoscaled"] for p in names], name="autoscaled",
                            marker_color=AUTO_COLOR)])
    mix = usd.get("reserved_mix_detail") or {}
    if usd.get("reserved_mix") is not None:
        fig.add_trace(go.Bar(x=[f"{mix['base']} {mix['reserved_pricing']} + {mix['flexible_pricing']}"],
                             y=[usd["reserved_mix"]], name="reserved base + peaks", marker_color=MIX_COLOR))
    fig.update_layout(barmode="group")
    return _layout(fig, f"Monthly cost per pricing (prices as of {plan.get('prices_as_of') or 'n/a'})",
                   "pricing", "USD per month")


def figures(plan: dict[str, Any]) -> list[go.Figure]:
    return [traffic_figure(plan), replicas_figure(plan), cost_figure(plan)]
