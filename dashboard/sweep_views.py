"""Presentation of sweeps: the capacity chart, latency against load, SLO attainment, tables.

Pure over the sweep result object (analysis/sweep_result.py); every figure it draws is a
number of that object, so the page shows what `servelab sweep-summary` prints.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboard.views import CHART_HEIGHT

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
METRICS = {"TTFT": "ttft_ms", "TPOT": "tpot_ms", "ITL": "itl_ms", "E2E": "e2e_ms"}


def capacity_frame(result: dict) -> pd.DataFrame:
    """One row per setup: capacity (req/s, output tok/s) with its interval, and its cost in points."""
    rows = []
    for s in result["setups"]:
        c, t = s["capacity_req_s"], s["capacity_output_tok_s"]
        rows.append({"setup": s["name"], "capacity_req_s": c.get("value"), "ci_low": c.get("ci_low"),
                     "ci_high": c.get("ci_high"), "capacity_output_tok_s": t.get("value"),
                     "tok_ci_low": t.get("ci_low"), "tok_ci_high": t.get("ci_high"),
                     "interval": c.get("method"), "repeats": len(c.get("repeats") or []),
                     "bound": c.get("bound"), "note": s.get("capacity_message"), "points": s["points_used"]})
    return pd.DataFrame(rows)


def points_frame(result: dict) -> pd.DataFrame:
    """Every measured point of every setup, flat (the CSV download)."""
    rows = []
    for s in result["setups"]:
        for p in s["points"]:
            row = {k: p.get(k) for k in ("repeat", "probe", "rate", "users", "offered_rate", "req_s",
                                          "output_tok_s", "slo_met", "margin", "slo_attainment",
                                          "error_rate", "run_id")}
            for name, key in METRICS.items():
                for q in ("p50", "p99"):
                    row[f"{name.lower()}_{q}_ms"] = (p.get(key) or {}).get(q)
            rows.append({"setup": s["name"], **row})
    return pd.DataFrame(rows)


def latency_frame(result: dict) -> pd.DataFrame:
    """Every point's latency percentiles (ms) by setup and load: the latency chart's data."""
    rows = []
    for s in result["setups"]:
        for p in s["points"]:
            row = {"setup": s["name"], "repeat": p.get("repeat"), "rate": p.get("rate"), "users": p.get("users"),
                   "slo_met": p.get("slo_met"), "run_id": p.get("run_id")}
            for name, key in METRICS.items():
                for q, v in (p.get(key) or {}).items():
                    row[f"{name.lower()}_{q}_ms"] = v
            rows.append(row)
    return pd.DataFrame(rows)


def _load_axis(result: dict) -> tuple[str, str]:
    return ("users", "concurrent users") if result.get("closed_loop") else ("offered_rate", "offered load (req/s)")


def capacity_chart(result: dict) -> go.Figure:
    """Capacity per setup with its 95% interval; setups with a bound drawn as an arrow at the bound."""
    fig = go.Figure()
    for i, s in enumerate(result["setups"]):
        c = s["capacity_req_s"]
        color = PALETTE[i % len(PALETTE)]
        if c.get("value") is not None:
            err = None
            if c.get("ci_low") is not None:
                err = dict(type="data", array=[c["ci_high"] - c["value"]], arrayminus=[c["value"] - c["ci_low"]])
            fig.add_trace(go.Bar(x=[s["name"]], y=[c["value"]], name=s["name"], marker_color=color, error_y=err,
                                 hovertemplate=f"{s['name']}: %{{y:.2f}} req/s"
                                 + (f" [{c['ci_low']:.2f}, {c['ci_high']:.2f}]" if c.get("ci_low") is not None else "")
                                 + f"<br>{len(c.get('repeats') or [])} repeats, {s['points_used']} points<extra></extra>"))
        else:
            fig.add_trace(go.Bar(x=[s["name"]], y=[0], name=s["name"], marker_color=color,
                                 hovertemplate=f"{s['name']}: {s.get('capacity_message') or 'no capacity'}<extra></extra>"))
            fig.add_annotation(x=s["name"], y=0, yanchor="bottom", showarrow=False,
                               text={"above": "above the range", "below": "below the range"}.get(c.get("bound"), "-"))
    fig.update_layout(height=CHART_HEIGHT, margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
                      yaxis_title="capacity at the SLO (req/s)", xaxis_title="setup")
    return fig


def latency_vs_load(result: dict, metric: str, quantile: str, thresholds_ms: list[float]) -> go.Figure:
    """The metric's quantile at every point, by load, one colour per setup, the SLO line dashed;
    points that missed the SLO drawn hollow."""
    key, x_title = _load_axis(result)
    fig = go.Figure()
    for i, s in enumerate(result["setups"]):
        pts = sorted(s["points"], key=lambda p: p.get(key) or p.get("rate") or 0)
        xs = [p.get(key) if p.get(key) is not None else p.get("rate") for p in pts]
        ys = [(p.get(METRICS[metric]) or {}).get(quantile) for p in pts]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers+lines", name=s["name"], line=dict(color=PALETTE[i % len(PALETTE)], width=1),
            marker=dict(size=9, symbol=["circle" if p.get("slo_met") else "circle-open" for p in pts]),
            text=[f"repeat {p['repeat']}, run {p.get('run_id')}" for p in pts],
            hovertemplate="%{x:.2f}: %{y:.1f} ms<br>%{text}<extra>" + s["name"] + "</extra>"))
    for thr in thresholds_ms:
        fig.add_hline(y=thr, line_dash="dash", line_color="#d62728",
                      annotation_text=f"SLO {thr:g} ms", annotation_position="top left")
    fig.update_layout(height=CHART_HEIGHT, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=x_title,
                      yaxis_title=f"{metric} {quantile} (ms)", yaxis_type="log",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def attainment_chart(result: dict) -> go.Figure:
    """Share of each point's measured requests that met every SLO term, by load."""
    key, x_title = _load_axis(result)
    fig = go.Figure()
    for i, s in enumerate(result["setups"]):
        pts = sorted(s["points"], key=lambda p: p.get(key) or p.get("rate") or 0)
        fig.add_trace(go.Scatter(
            x=[p.get(key) if p.get(key) is not None else p.get("rate") for p in pts],
            y=[p.get("slo_attainment") for p in pts], mode="markers", name=s["name"],
            marker=dict(size=9, color=PALETTE[i % len(PALETTE)]),
            hovertemplate="%{x:.2f}: %{y:.1%} met the SLO<extra>" + s["name"] + "</extra>"))
    fig.update_layout(height=CHART_HEIGHT, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=x_title,
                      yaxis_title="SLO attainment", yaxis_tickformat=".0%", yaxis_range=[0, 1.05],
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def sweep_option(row: dict[str, Any]) -> str:
    return f"{row['sweep_id']} · {row.get('name')} · {row.get('status')} · {row.get('points', 0)} points"
