"""The Compare page's tables and figures: ECDFs of two sides, percentile deltas, hardware.

Shapes only: the deltas, intervals and config diff come from analysis/compare.py, the
hardware figures from each run's summary (analysis/hardware.py via analysis/report.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.compare import METRICS, ecdf
from analysis.stats import UNIT_NS
from dashboard import hardware_views
from dashboard.views import CHART_HEIGHT

SIDE_COLOR = {"A": "#1f77b4", "B": "#ff7f0e"}
DEFINITIONS = {"ttft": "time to first token: first content chunk - send",
               "itl": "gap between consecutive content chunks (every gap of every ok request)",
               "e2e": "end to end: last byte - send"}


def ecdf_frame(sides: dict[str, np.ndarray], metric: str) -> pd.DataFrame:
    """The drawn ECDF points of each side (ms), the chart's CSV."""
    parts = []
    for side, values in sides.items():
        x, y = ecdf(values)
        parts.append(pd.DataFrame({"side": side, "metric": metric, "value_ms": x / UNIT_NS["ms"], "fraction": y}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def ecdf_chart(frame: pd.DataFrame, metric: str, names: dict[str, str]) -> go.Figure:
    """Both sides' ECDFs of one metric on one axis (log x when the values span a decade)."""
    fig = go.Figure()
    for side, part in frame.groupby("side", sort=True):
        fig.add_trace(go.Scatter(x=part["value_ms"], y=part["fraction"], mode="lines", name=f"{side}: {names[side]}",
                                 line=dict(color=SIDE_COLOR.get(side), shape="hv"),
                                 hovertemplate=(f"{side}: %{{y:.1%}} of {METRICS[metric]} values <= %{{x:.2f}} ms"
                                                "<extra></extra>")))
    positive = frame["value_ms"][frame["value_ms"] > 0]
    log = len(positive) and positive.max() / max(positive.min(), 1e-9) > 10
    fig.update_layout(height=CHART_HEIGHT, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(title=f"{METRICS[metric]} (ms)", type="log" if log else "linear"),
                      yaxis=dict(title="fraction <= x", tickformat=".0%"),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def deltas_frame(rows_by_metric: dict[str, list[dict]]) -> pd.DataFrame:
    """Every metric's percentile deltas, one row per (metric, percentile)."""
    rows = [{"metric": METRICS[m], **r} for m, rows in rows_by_metric.items() for r in rows]
    return pd.DataFrame(rows, columns=["metric", "percentile", "a_ms", "b_ms", "delta_ms", "delta_low_ms",
                                       "delta_high_ms", "change", "change_low", "change_high", "method"])


def hardware_frame(sides: dict[str, list[dict]], hosts: dict[str, list[dict]]) -> pd.DataFrame:
    """Hardware side by side: the host each side ran on, then its GPU and CPU figures (each run's,
    joined with ' | ' when a side's runs differ)."""
    def joined(values: list[str]) -> str:
        return " | ".join(dict.fromkeys(v for v in values if v)) or "–"

    rows = []
    for key in ("hostname", "platform", "cpus", "mem_bytes", "gpus"):
        a = [_host_value(h, key) for h in hosts["A"]]
        b = [_host_value(h, key) for h in hosts["B"]]
        if any(a) or any(b):
            rows.append({"figure": f"host {key}", "A": joined(a), "B": joined(b)})
    figures: dict[str, dict[str, list[str]]] = {}
    for side, summaries in sides.items():
        for s in summaries:
            hw = s.get("hardware")
            for label, value in hardware_views.tiles(hw) + hardware_views.cpu_tiles(hw):
                figures.setdefault(label, {"A": [], "B": []})[side].append(value)
    rows += [{"figure": label, "A": joined(v["A"]), "B": joined(v["B"])} for label, v in figures.items()]
    return pd.DataFrame(rows, columns=["figure", "A", "B"])


def _host_value(host: dict | None, key: str) -> str:
    value = (host or {}).get(key)
    if value is None:
        return ""
    if key == "mem_bytes":
        return f"{value / 2**30:.1f} GiB"
    if isinstance(value, list):
        return ", ".join(str(v.get("name", v)) if isinstance(v, dict) else str(v) for v in value)
    return str(value)


def throughput_frame(sides: dict[str, list[dict]]) -> pd.DataFrame:
    """Per run: requests, req/s, output tok/s, error rate (each side's runs listed)."""
    rows = [{"side": side, "run": s.get("run_id"), "label": s.get("label"), "requests": s.get("measured_requests"),
             "req_s": s.get("req_s"), "output_tok_s": s.get("output_tok_s"), "error_rate": s.get("error_rate")}
            for side, summaries in sides.items() for s in summaries]
    return pd.DataFrame(rows, columns=["side", "run", "label", "requests", "req_s", "output_tok_s", "error_rate"])
