"""The Gate page's numbers and figures: stored runs judged exactly as `servelab gate` judges them.

The reading is read-only (dashboard/data.py: each repeat's summary with no SLO, the one
read path), and the judging is analysis/gate_sides.judge_summaries, the CLI's own; so the
verdicts, medians, intervals and p-values here are the numbers of `servelab gate --json`
on the same store (tests/test_dashboard_gate.py holds the two together).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from analysis.gate_metrics import CATALOG
from analysis.gate_sides import judge_summaries, one_load, same_load, untrusted_reason
from dashboard.views import CHART_HEIGHT

VERDICT_COLOR = {"regressed": "#d62728", "improved": "#2ca02c", "no change": "#1f77b4", "inconclusive": "#ff7f0e"}


def judge_stored(summaries: dict[str, dict[str, dict]], loads: dict[str, list[tuple[str, dict]]],
                 specs: list, repeats: int, alpha: float, specs_text: dict[str, str]) -> dict[str, Any]:
    """{side: {run_id: summary}} and {side: [(run_id, stored load)]} -> the gate's result object.
    SideError when a side's runs, or the two sides, ran different loads (as the CLI says)."""
    load = same_load([(side, one_load(side, pairs)) for side, pairs in loads.items()])
    untrusted = [why for side, runs in summaries.items() for run_id, s in runs.items()
                 if (why := untrusted_reason(side, run_id, s)) is not None]
    sides = {side: {"spec": specs_text[side], "measured_now": False, "runs": list(runs)}
             for side, runs in summaries.items()}
    return judge_summaries(list(summaries["baseline"].values()), list(summaries["candidate"].values()),
                           untrusted, specs, repeats, alpha, load, sides)


def verdict_frame(result: dict) -> pd.DataFrame:
    """One row per metric: verdict, medians of the repeats, change, its interval, p, floors, why."""
    rows = []
    for m in result["metrics"]:
        rows.append({"metric": m["name"], "verdict": m["verdict"], "unit": m["unit"],
                     "baseline": m["baseline_median"], "candidate": m["candidate_median"],
                     "change": m["rel_change"], "ci_low": m["ci_low"], "ci_high": m["ci_high"],
                     "abs_change": m["abs_change"], "abs_ci_low": m["abs_ci_low"], "abs_ci_high": m["abs_ci_high"],
                     "p": m["p_value"], "rel_floor": m["rel_floor"], "abs_floor": m["abs_floor"],
                     "repeats": f"{len(m['baseline'])} / {len(m['candidate'])}", "reason": m["reason"]})
    return pd.DataFrame(rows)


def repeats_frame(result: dict) -> pd.DataFrame:
    """Every repeat's value per metric and side (the chart's data and its CSV)."""
    rows = [{"metric": m["name"], "side": side, "repeat": i + 1, "value": v, "unit": m["unit"]}
            for m in result["metrics"] for side in ("baseline", "candidate")
            for i, v in enumerate(m[side])]
    return pd.DataFrame(rows, columns=["metric", "side", "repeat", "value", "unit"])


def change_chart(frame: pd.DataFrame, confidence: float) -> go.Figure:
    """Each metric's relative change of the median with its interval, coloured by verdict,
    and the metric's relative floor as grey ticks either side of zero."""
    fig = go.Figure()
    shown = frame[frame["change"].notna()]
    for verdict, part in shown.groupby("verdict", sort=False):
        fig.add_trace(go.Scatter(
            x=part["change"] * 100, y=part["metric"], mode="markers", name=verdict,
            marker=dict(color=VERDICT_COLOR.get(verdict, "#555"), size=10),
            error_x=dict(type="data", symmetric=False, array=(part["ci_high"] - part["change"]) * 100,
                         arrayminus=(part["change"] - part["ci_low"]) * 100),
            customdata=part[["ci_low", "ci_high", "p", "reason"]].to_numpy(),
            hovertemplate=("%{y}: %{x:+.1f}% (median(candidate) / median(baseline) - 1)<br>"
                           f"{confidence:.0%} interval " "[%{customdata[0]:+.1%}, %{customdata[1]:+.1%}]<br>"
                           "p = %{customdata[2]:.3g}<br>%{customdata[3]}<extra></extra>")))
    for _, r in shown.iterrows():
        for sign in (-1, 1):
            fig.add_trace(go.Scatter(x=[sign * r["rel_floor"] * 100], y=[r["metric"]], mode="markers",
                                     marker=dict(symbol="line-ns-open", size=16, color="#999"),
                                     showlegend=False, hovertemplate="relative floor %{x:+.0f}%<extra></extra>"))
    fig.add_vline(x=0, line_color="#555")
    fig.update_layout(height=max(CHART_HEIGHT, 40 * len(shown) + 80), margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title="change of the median over repeats (%)",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def metric_names() -> list[str]:
    return list(CATALOG)
