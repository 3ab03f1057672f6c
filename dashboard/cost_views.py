"""Presentation of the $ layer: the frontier chart, cost, attribution and recommendation tables, the catalog.

Pure over the objects analysis/frontier.py, cost.py, attribution.py and recommend.py return
(the ones `servelab frontier --json` and `servelab recommend --json` print): this module
only shapes them, so a page shows the CLI's numbers and no others.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboard.sweep_views import PALETTE
from dashboard.views import CHART_HEIGHT

GREY = "#c7c7c7"
LATENCIES = {"TTFT": "ttft", "TPOT": "tpot", "ITL": "itl", "E2E": "e2e"}
STATS = ("p50", "p90", "p95", "p99", "p999", "mean")


def usd(v: float | None) -> str:
    """`$0.1234` / `$1,234.00`, as the CLI prints dollars; a dash for none."""
    if v is None:
        return "–"
    return f"${v:,.2f}" if abs(v) >= 100 else f"${v:.4g}"


def interval_text(iv: dict | None, fmt=lambda v: f"{v:.3g}", suffix: str = "") -> str:
    """`3.9x [3.5, 4.2]`: the value, then its 95% interval when there is one."""
    if not iv or iv.get("value") is None:
        return "–"
    text = f"{fmt(iv['value'])}{suffix}"
    if iv.get("ci_low") is not None and iv.get("ci_high") is not None:
        text += f" [{fmt(iv['ci_low'])}, {fmt(iv['ci_high'])}]"
    return text


def run_ids(sweep: dict, setup: str, kind: str, load: float) -> list[str]:
    """The runs (one per repeat) behind one frontier point: the setup's completed points at that load."""
    for s in sweep.get("setups") or []:
        if s.get("name") == setup:
            return [p["run_id"] for p in s.get("points") or []
                    if p.get("run_id") and p.get("status", "completed") == "completed"
                    and (p.get("users") if kind == "users" else (p.get("rate") or p.get("offered_rate"))) == load]
    return []


def frontier_frame(front: dict, sweep: dict) -> pd.DataFrame:
    """One row per (setup, load) of `servelab frontier --json`'s `frontier.points`, with its runs."""
    rows = []
    for r in front["points"]:
        by = r.get("dominated_by")
        runs = run_ids(sweep, r["setup"], r["load_kind"], r["load"])
        rows.append({"setup": r["setup"], "load": r["load"], "load_unit": "users" if r["load_kind"] == "users"
                     else "req/s", "repeats": r["repeats"], "req_s": r["req_s"], "output_tok_s": r["output_tok_s"],
                     "latency_ms": r["latency_ms"], "usd_per_1m_output_tokens": r["usd_per_1m_output_tokens"],
                     "slo_met": r["slo_met"], "pareto": r["pareto"],
                     "dominated_by": "" if not by else f"{by['setup']} @ {by['load']:g}",
                     "run": f"run?run={runs[0]}" if runs else None, "run_ids": " ".join(runs),
                     "prices_as_of": r.get("prices_as_of"), "prices_source": r.get("prices_source")})
    return pd.DataFrame(rows)


def frontier_chart(frame: pd.DataFrame, latency_label: str) -> go.Figure:
    """Latency vs $ per 1M output tokens: Pareto points in their setup's colour joined by the
    Pareto line, dominated points grey, hollow markers for loads that missed the SLO."""
    fig = go.Figure()
    full = frame.dropna(subset=["latency_ms", "usd_per_1m_output_tokens"]) if len(frame) else frame
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(dict.fromkeys(frame.get("setup", [])))}
    for name, color in colors.items():
        for on_front in (True, False):
            sub = full[(full["setup"] == name) & (full["pareto"] == on_front)]
            if sub.empty:
                continue
            fig.add_trace(go.Scatter(
                x=sub["latency_ms"], y=sub["usd_per_1m_output_tokens"], mode="markers",
                name=name if on_front else f"{name} (dominated)", legendgroup=name, showlegend=True,
                marker=dict(size=11 if on_front else 8, color=color if on_front else GREY,
                            line=dict(width=1, color=color),
                            symbol=["circle" if m else "circle-open" for m in sub["slo_met"]]),
                customdata=sub[["run_ids", "load", "load_unit", "req_s", "dominated_by", "setup"]].astype(object).values,
                hovertemplate=(f"<b>{name}</b> at %{{customdata[1]:~g}} %{{customdata[2]}}<br>"
                               f"{latency_label} %{{x:.1f}} ms, $%{{y:.4g}} per 1M output tokens<br>"
                               "%{customdata[3]:.2f} req/s achieved<br>runs: %{customdata[0]}"
                               + ("" if on_front else "<br>dominated by %{customdata[4]}") + "<extra></extra>")))
    line = full[full["pareto"] == True].sort_values("latency_ms")  # noqa: E712 (pandas mask)
    if len(line) > 1:
        fig.add_trace(go.Scatter(x=line["latency_ms"], y=line["usd_per_1m_output_tokens"], mode="lines",
                                 name="Pareto line", line=dict(color="#444", dash="dot", shape="hv"),
                                 hoverinfo="skip"))
    fig.update_layout(height=CHART_HEIGHT + 80, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title=f"{latency_label} (ms)", yaxis_title="$ per 1M output tokens",
                      xaxis_type="log", yaxis_type="log", legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def cost_frame(costs: list[dict]) -> pd.DataFrame:
    """`servelab frontier --json`'s `costs`: one copy of each setup at its capacity within the SLO."""
    rows = []
    for c in costs:
        row = {"setup": c["setup"], "pricing": c["pricing"], "usd_per_hour": c["usd_per_hour"],
               "usd_per_month": c["usd_per_month"]}
        for key in ("usd_per_1m_output_tokens", "usd_per_1m_total_tokens", "usd_per_1k_requests"):
            iv = c.get(key) or {}
            row.update({key: iv.get("value"), f"{key}_ci_low": iv.get("ci_low"), f"{key}_ci_high": iv.get("ci_high")})
        row.update(prices_as_of=c.get("prices_as_of"), prices_source=c.get("prices_source"))
        rows.append(row)
    return pd.DataFrame(rows)


def attribution_frame(att: dict, sweep: dict) -> pd.DataFrame:
    """`servelab frontier --json`'s `attribution.rows`, numbers flat (for CSV) plus a fidelity column
    where the sweep result carries a report for the setup."""
    fid = {s.get("name"): s.get("fidelity") for s in sweep.get("setups") or []}
    rows = []
    for r in att["rows"]:
        row: dict[str, Any] = {"setup": r["setup"], "baseline": r["baseline"]}
        for key, verdict in (("capacity_ratio", "capacity_verdict"), ("usd_per_1m_output_tokens_pct", "usd_verdict"),
                             ("ttft_p99_pct", "ttft_verdict"), ("tpot_p99_pct", "tpot_verdict")):
            iv = r.get(key) or {}
            row.update({key: iv.get("value"), f"{key}_ci_low": iv.get("ci_low"),
                        f"{key}_ci_high": iv.get("ci_high"), verdict: r[verdict]})
        at = r["latency_at"]
        row["latency_at"] = at if isinstance(at, str) else f"{at:g} req/s"
        report = fid.get(r["setup"]) or {}
        row["fidelity_exact_match"] = report.get("exact_match_rate")
        row["fidelity_token_agreement"] = report.get("token_agreement")
        rows.append(row)
    return pd.DataFrame(rows)


def attribution_display(att: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """The attribution as the CLI's table reads: `value [low, high]` and the verdict when nothing moved."""
    def cell(r, key, verdict, fmt, suffix=""):
        text = interval_text(r.get(key), fmt, suffix)
        return f"{text} · {r[verdict]}" if r[verdict] in ("no measurable change", "no interval") else text

    def pct(v):
        return f"{v:+.0f}%"

    out = []
    for r, (_, f) in zip(att["rows"], frame.iterrows()):
        out.append({"setup": r["setup"],
                    "fidelity": None if pd.isna(f["fidelity_exact_match"]) else f["fidelity_exact_match"],
                    "capacity": cell(r, "capacity_ratio", "capacity_verdict", lambda v: f"{v:.2f}", "x"),
                    "$/1M out": cell(r, "usd_per_1m_output_tokens_pct", "usd_verdict", pct),
                    "TTFT p99": cell(r, "ttft_p99_pct", "ttft_verdict", pct),
                    "TPOT p99": cell(r, "tpot_p99_pct", "tpot_verdict", pct),
                    "latency at": f["latency_at"]})
    return pd.DataFrame(out)


def attribution_chart(frame: pd.DataFrame, key: str, label: str, none_at: float) -> go.Figure:
    """One attribution figure per setup with its 95% interval; the no-change line dashed."""
    fig = go.Figure()
    sub = frame.dropna(subset=[key]) if len(frame) else frame
    for i, (_, r) in enumerate(sub.iterrows()):
        lo, hi = r[f"{key}_ci_low"], r[f"{key}_ci_high"]
        err = None if pd.isna(lo) or pd.isna(hi) else dict(type="data", array=[hi - r[key]], arrayminus=[r[key] - lo])
        fig.add_trace(go.Scatter(x=[r[key]], y=[r["setup"]], mode="markers", error_x=err, name=r["setup"],
                                 marker=dict(size=11, color=PALETTE[i % len(PALETTE)]),
                                 hovertemplate=f"{r['setup']}: %{{x:.3g}}"
                                 + ("" if err is None else f" [{lo:.3g}, {hi:.3g}]") + "<extra></extra>"))
    fig.add_vline(x=none_at, line_dash="dash", line_color="#888")
    fig.update_layout(height=max(200, 60 + 45 * len(sub)), margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
                      xaxis_title=label, yaxis_title=None)
    return fig
