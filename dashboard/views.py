"""Presentation helpers for the pages: labels, number formats, tables and plotly figures.

No store access and no metric arithmetic: the numbers come from analysis/ (summaries,
per-request frames); this module only shapes them for display.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.selfcheck import figure_rows, shown_status

# summary key -> row label of the latency table, in display order.
LATENCY_ROWS = {"ttft_ms": "TTFT", "ttft_sched_ms": "TTFT from schedule", "itl_ms": "ITL",
                "tpot_ms": "TPOT", "e2e_ms": "E2E", "schedule_lag_ms": "schedule lag"}
PCT_COLUMNS = {"p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99", "p999": "p99.9", "mean": "mean"}
PCT_HELP = {**{v: f"{v} percentile, linear interpolation between closest ranks" for v in ("p50", "p90", "p95", "p99",
                                                                                        "p99.9")},
            "mean": "arithmetic mean"}
METRIC_HELP = ("TTFT = first content chunk - send; TTFT from schedule = first chunk - scheduled send; ITL = gaps "
               "between content chunks; TPOT = (last - first chunk) / (output tokens - 1); E2E = last byte - send; "
               "schedule lag = send - scheduled send (docs/metrics.md)")
OK_COLOR, E2E_COLOR, ERROR_COLOR, WINDOW_COLOR = "#1f77b4", "#9ecae1", "#d62728", "rgba(44,160,44,0.08)"
CHART_HEIGHT = 320


def number(value: float | None, fmt: str = "{:.2f}", none: str = "–") -> str:
    """A formatted number, or a dash for None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return none
    return fmt.format(value)


def load_text(mode: str | None, users: Any, rate: Any) -> str:
    """`open 5 req/s` / `closed 2 users`: the load a run offered (users only mean closed loop)."""
    if mode == "open":
        return "open loop" if _missing(rate) else f"open {float(rate):g} req/s"
    if mode == "closed":
        return "closed loop" if _missing(users) else f"closed {int(users)} user{'s' * (int(users) != 1)}"
    return mode or "–"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def when(iso: str | None) -> str:
    """`2026-01-01 12:00:00` from the store's ISO UTC text (the column header says UTC)."""
    return "" if not iso else iso.replace("T", " ").removesuffix("Z")


def duration_s(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return (datetime.strptime(end, fmt) - datetime.strptime(start, fmt)).total_seconds()


def runs_table(rows: list[dict]) -> pd.DataFrame:
    """The run listing as shown on the Runs page; `run` holds the relative link to the run."""
    frame = pd.DataFrame(rows)
    return pd.DataFrame({
        "run": "run?run=" + frame["run_id"],
        "status": [shown_status(r.get("status"), r.get("self_check")) for r in rows],
        "label": frame["label"].fillna(""),
        "load": [load_text(r.get("mode"), r.get("users"), r.get("rate")) for r in rows],
        "target": frame["target"].fillna(""),
        "requests": frame["requests"].astype(int),
        "started": [when(r.get("started_at") or r.get("created_at")) for r in rows],
        "duration_s": [duration_s(r.get("started_at"), r.get("ended_at")) for r in rows],
    })


def self_check_table(check: dict) -> pd.DataFrame:
    """The load generator's self-check figures: what, value, the limit that fails the run."""
    rows = figure_rows(check)
    return pd.DataFrame({"figure": [r["figure"] for r in rows],
                         "value": [number(r["value"], "{:,}" if isinstance(r["value"], int) else "{:.4g}")
                                   for r in rows],
                         "limit": [r["limit"] for r in rows]})


def run_option(row: dict) -> str:
    """How a run reads in the run picker."""
    load = load_text(row.get("mode"), row.get("users"), row.get("rate"))
    parts = [row["run_id"], row.get("label"), None if load == row.get("label") else load, row.get("status")]
    return "  ·  ".join(p for p in parts if p)


def latency_table(summary: dict) -> pd.DataFrame:
    """One row per latency metric that has values, columns p50..p99.9 and mean (ms)."""
    rows = []
    for key, name in LATENCY_ROWS.items():
        dist = summary.get(key) or {}
        if any(dist.get(k) is not None for k in PCT_COLUMNS):
            rows.append({"metric": name, **{label: dist.get(k) for k, label in PCT_COLUMNS.items()}})
    return pd.DataFrame(rows, columns=["metric", *PCT_COLUMNS.values()])


def slo_table(summary: dict) -> pd.DataFrame:
    """The run's SLO terms with their measured percentile and verdict."""
    errors = bool(summary.get("errors"))
    rows = []
    for t in summary.get("slo_terms") or []:
        value = t.get("value_ms")
        if value is None:
            shown = "above every latency (errors count as misses)" if errors else "no data"
        else:
            shown = f"{value:.2f} ms"
        rows.append({"term": t["term"], "measured": shown, "met": "yes" if t["met"] else "no"})
    return pd.DataFrame(rows, columns=["term", "measured", "met"])


def server_rows(view: dict | None) -> pd.DataFrame:
    """The server's view (analysis/server_view.py) as rows of (what, value)."""
    if not view:
        return pd.DataFrame(columns=["what", "value"])
    rows = [("responses with server timings", str(view["responses"]))]
    rows += [(f"cache: {k}", str(n)) for k, n in sorted((view.get("cache") or {}).items())]
    for tier, e in sorted((view.get("tiers") or {}).items()):
        rows.append((f"tier {tier}: served", str(e["served"])))
        rows += [(f"tier {tier}: refused ({r})", str(n)) for r, n in sorted(e["refused"].items())]
    rows += [(f"degraded: {k}", str(n)) for k, n in sorted((view.get("degraded") or {}).items())]
    for key in ("queue_ms", "prefill_ms", "decode_ms"):
        d = view.get(key) or {}
        if d.get("p50") is not None:
            rows.append((f"{key} p50 / p99", f"{d['p50']:.2f} / {d['p99']:.2f}"))
    for key in ("batch_mean", "prefix_tokens_mean", "embed_ms_p50"):
        if view.get(key) is not None:
            rows.append((key, f"{view[key]:.2f}"))
    return pd.DataFrame(rows, columns=["what", "value"])


def steps_table(summary: dict) -> pd.DataFrame:
    """Per-step figures for a run with several steps."""
    rows = []
    for s in summary.get("steps") or []:
        rows.append({"step": s.get("step"), "load": load_text(s.get("mode"), s.get("users"), s.get("rate")),
                     "status": s.get("status"), "requests": s.get("requests"),
                     "measured": s.get("measured_requests"), "errors": s.get("errors"),
                     "req/s": s.get("req_s"), "output tok/s": s.get("output_tok_s"),
                     "TTFT p99 (ms)": (s.get("ttft_ms") or {}).get("p99"),
                     "ITL p99 (ms)": (s.get("itl_ms") or {}).get("p99"),
                     "SLO attainment": s.get("slo_attainment")})
    return pd.DataFrame(rows)


def errors_table(requests: pd.DataFrame) -> pd.DataFrame:
    """Failed requests grouped by status, HTTP status and error text, most frequent first."""
    failed = requests[requests["status"] != "ok"]
    if failed.empty:
        return pd.DataFrame(columns=["status", "http_status", "error", "requests"])
    keys = ["status", "http_status", "error"]
    grouped = (failed[keys].astype(object).fillna("").astype(str)
               .value_counts().rename("requests").reset_index())
    return grouped.sort_values("requests", ascending=False, kind="stable")


def values_csv(values: np.ndarray, name: str) -> str:
    """One column of numbers as CSV text (a chart's data when it is a plain distribution)."""
    return pd.DataFrame({name: np.asarray(values, dtype=float)}).to_csv(index=False)


def _layout(fig: go.Figure, x_title: str, y_title: str, **kw: Any) -> go.Figure:
    fig.update_layout(height=CHART_HEIGHT, margin=dict(l=10, r=10, t=30, b=10), bargap=0.05,
                      xaxis_title=x_title, yaxis_title=y_title,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), **kw)
    return fig


def _bins(n: int) -> int:
    return int(min(60, max(10, 2 * math.sqrt(max(n, 1)))))


def histogram(values: np.ndarray | pd.Series, x_title: str, p50: float | None, p99: float | None) -> go.Figure:
    """A latency histogram (ms) with dashed p50 and p99 markers."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    fig = go.Figure(go.Histogram(x=values, nbinsx=_bins(len(values)), marker_color=OK_COLOR,
                                 hovertemplate="%{x} ms: %{y}<extra></extra>"))
    for name, value in (("p50", p50), ("p99", p99)):
        if value is not None:
            fig.add_vline(x=value, line_dash="dash", line_color="#555")
            fig.add_annotation(x=value, y=1, yref="paper", yanchor="bottom", showarrow=False,
                               text=f"{name} {value:.1f}", font=dict(size=11, color="#555"))
    return _layout(fig, x_title, "requests" if "TTFT" in x_title else "gaps", showlegend=False)


PROFILER_COLOR = "rgba(255,165,0,0.18)"


def latency_over_time(frame: pd.DataFrame, windows_s: list[tuple[float, float]],
                      profiled: list[tuple[float, float]] | None = None) -> go.Figure:
    """TTFT and E2E of each ok request by send time, failures as red crosses on the x axis,
    the steady (measured) windows shaded, and the torch-profiler windows (`profiled`)."""
    ok = frame[frame["status"] == "ok"]
    failed = frame[frame["status"] != "ok"]
    fig = go.Figure()
    for start, end in windows_s:
        fig.add_vrect(x0=start, x1=end, fillcolor=WINDOW_COLOR, line_width=0, layer="below")
    for start, end in profiled or []:
        fig.add_vrect(x0=start, x1=end, fillcolor=PROFILER_COLOR, line_width=0, layer="below")
    fig.add_trace(go.Scatter(x=ok["t_s"], y=ok["e2e_ms"], mode="markers", name="E2E",
                             marker=dict(color=E2E_COLOR, size=6),
                             hovertemplate="t=%{x:.2f} s<br>E2E %{y:.1f} ms<extra></extra>"))
    fig.add_trace(go.Scatter(x=ok["t_s"], y=ok["ttft_ms"], mode="markers", name="TTFT",
                             marker=dict(color=OK_COLOR, size=6),
                             hovertemplate="t=%{x:.2f} s<br>TTFT %{y:.1f} ms<extra></extra>"))
    if not failed.empty:
        after = [f"{s}, failed after {number(v, '{:.0f}')} ms" for s, v in zip(failed["status"], failed["e2e_ms"])]
        fig.add_trace(go.Scatter(x=failed["t_s"], y=np.zeros(len(failed)), mode="markers",
                                 name=f"failed ({len(failed)})", text=after,
                                 marker=dict(color=ERROR_COLOR, symbol="x", size=10),
                                 hovertemplate="t=%{x:.2f} s<br>%{text}<extra></extra>"))
    if windows_s:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="steady window (measured)",
                                 marker=dict(color="rgba(44,160,44,0.3)", symbol="square", size=12)))
    if profiled:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="torch profiler on (slower)",
                                 marker=dict(color="rgba(255,165,0,0.5)", symbol="square", size=12)))
    return _layout(fig, "time since the first request was sent (s)", "latency (ms)", showlegend=True)


def windows_s(summary: dict, requests: pd.DataFrame) -> list[tuple[float, float]]:
    """Each step's steady window in seconds on the latency-over-time axis (since first send)."""
    sends = pd.to_numeric(requests.get("t_send_ns"), errors="coerce").dropna() if len(requests) else None
    if sends is None or sends.empty:
        return []
    t0 = float(sends.min())
    out = []
    for s in summary.get("steps") or []:
        a, b = s.get("window_start_ns"), s.get("window_end_ns")
        if a is not None and b is not None:
            out.append(((a - t0) / 1e9, (b - t0) / 1e9))
    return out
