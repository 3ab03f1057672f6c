"""Hardware on the run page: figure tiles, latency with power/utilisation overlaid, operators.

Formatting and figures only; the numbers come from analysis/hardware.py via the summary,
the samples and operators from the store.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.hardware import window_spans_ns

TILES = [  # (summary key, label, format, scale)
    ("power_w_mean", "mean power (W)", "{:.0f}", 1),
    ("power_w_peak", "peak power (W)", "{:.0f}", 1),
    ("j_per_output_token", "J / output token", "{:.3f}", 1),
    ("tokens_per_joule", "tokens / J", "{:.1f}", 1),
    ("gpu_s_per_1m_tokens", "GPU-s / 1M tokens", "{:,.0f}", 1),
    ("gpu_util_pct_mean", "GPU util (%)", "{:.0f}", 1),
    ("mem_used_bytes_peak", "peak GPU memory (GiB)", "{:.1f}", 1 / 2**30),
]
UTIL_SERIES = [("gpu", "gpu_util_pct", "GPU util %"), ("server", "cpu_pct", "server CPU %"),
               ("loadgen", "cpu_pct", "load generator CPU %")]


def tiles(hw: dict | None) -> list[tuple[str, str]]:
    """(label, value) for each GPU figure the run has."""
    out = []
    for key, label, fmt, scale in TILES:
        v = (hw or {}).get(key)
        if v is not None:
            out.append((label, fmt.format(v * scale)))
    return out


def cpu_tiles(hw: dict | None) -> list[tuple[str, str]]:
    cpu = (hw or {}).get("cpu_pct_mean") or {}
    names = {"server": "server CPU (%)", "loadgen": "load generator CPU (%)", "host": "host CPU (%)"}
    return [(names[k], f"{cpu[k]:.0f}") for k in names if cpu.get(k) is not None]


def _series(samples: pd.DataFrame, role: str, col: str, t0_ns: float) -> tuple[np.ndarray, np.ndarray]:
    rows = samples[(samples["role"] == role)] if "role" in samples else samples.iloc[0:0]
    if col not in rows or rows[col].isna().all():
        return np.array([]), np.array([])
    rows = rows.dropna(subset=[col]).groupby("t_ns", as_index=False)[col].mean()
    return (rows["t_ns"].to_numpy(float) - t0_ns) / 1e9, rows[col].to_numpy(float)


def profiler_spans(ops: list[dict], t0_ns: float) -> list[tuple[float, float]]:
    """(start, end) seconds after t0 of each step's torch-profiler window."""
    return [((a - t0_ns) / 1e9, (b - t0_ns) / 1e9) for a, b in window_spans_ns(ops).values()]


def over_time(frame: pd.DataFrame, samples: pd.DataFrame, t0_ns: float,
              profiled: list[tuple[float, float]] | None = None) -> go.Figure:
    """Latency of each ok request (top) above utilisation and power (bottom), one time axis;
    `profiled` spans (the torch-profiler windows) are shaded: requests there ran slower."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.5, 0.5], specs=[[{}], [{"secondary_y": True}]])
    ok = frame[frame["status"] == "ok"]
    fig.add_trace(go.Scatter(x=ok["t_s"], y=ok["ttft_ms"], mode="markers", name="TTFT (ms)",
                             marker=dict(size=5)), row=1, col=1)
    fig.add_trace(go.Scatter(x=ok["t_s"], y=ok["e2e_ms"], mode="markers", name="E2E (ms)",
                             marker=dict(size=5)), row=1, col=1)
    for role, col, name in UTIL_SERIES:
        x, y = _series(samples, role, col, t0_ns)
        if len(x):
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name), row=2, col=1)
    x, y = _series(samples, "gpu", "power_w", t0_ns)
    if len(x):
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="GPU power (W)",
                                 line=dict(dash="dot")), row=2, col=1, secondary_y=True)
    for a, b in profiled or []:
        fig.add_vrect(x0=a, x1=b, fillcolor="orange", opacity=0.15, line_width=0,
                      annotation_text="torch profiler", annotation_position="top left")
    fig.update_yaxes(title_text="latency (ms)", row=1, col=1)
    fig.update_yaxes(title_text="utilisation (%)", row=2, col=1, secondary_y=False)
    fig.update_yaxes(title_text="power (W)", row=2, col=1, secondary_y=True)
    fig.update_xaxes(title_text="time since the first request was sent (s)", row=2, col=1)
    fig.update_layout(height=520, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def operators_table(ops: list[dict]) -> pd.DataFrame:
    if not ops:
        return pd.DataFrame()
    df = pd.DataFrame(ops)
    keep = [c for c in ("step", "rank", "name", "calls", "self_cpu_us", "self_cuda_us", "cpu_total_us",
                        "cuda_total_us")
            if c in df]
    return df[keep]


def engine_table(rows: list[dict]) -> pd.DataFrame:
    """The engine's own metrics over the run (analysis/engine_metrics.py), its key series
    first (requests running and waiting, KV cache, prefix cache, preemptions)."""
    ordered = sorted(rows, key=lambda r: (not r.get("key"), r["kind"] != "gauge", r["name"], r["labels"]))
    return pd.DataFrame([{"series": r["name"], "labels": r["labels"], "kind": r["kind"], "mean": r["mean"],
                          "max": r["max"], "last": r["last"], "growth": r["delta"]} for r in ordered])


def engine_over_time(samples: pd.DataFrame, names: list[str]) -> go.Figure:
    """The key gauges over the run, seconds since the first scrape."""
    fig = go.Figure()
    if samples.empty:
        return fig
    t0 = float(samples["t_ns"].min())
    for name in names:
        s = samples[samples["name"] == name].groupby("t_ns")["value"].sum()
        fig.add_trace(go.Scatter(x=(s.index.to_numpy(dtype=float) - t0) / 1e9, y=s.to_numpy(), name=name,
                                 mode="lines+markers"))
    fig.update_layout(xaxis_title="time since the first scrape (s)", height=300, margin={"t": 20})
    return fig
