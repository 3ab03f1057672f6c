"""Hardware figures of a step: power, energy per token, utilisation, memory, host CPU.

Pure: sample rows (the `samples` table, any producer) plus a time window and the output
tokens completed in it. GPU rows are those with `role == "gpu"`; host rows carry `role`
"host", "core", "server", "loadgen". Each figure is None when not applicable (no samples,
a field the device does not report, a window too short), never 0.

Formulas (per window [t0, t1], summed over GPUs):
- power_w_mean = sum over GPUs of the mean sampled power; power_w_peak = highest sample.
- energy_j = sum over GPUs of (last - first energy counter reading in the window), only
  when those readings are >= 1 s apart (the counter moves in ~100 ms steps); never
  integrated from sampled power.
- j_per_output_token = energy_j / output_tokens; tokens_per_joule = its inverse.
- gpu_s_per_1m_tokens = n_gpus * window_s / output_tokens * 1e6.
- gpu_util_pct_mean: mean over GPUs and samples; mem_used_bytes_peak: highest sample of a GPU.
- cpu_pct_mean: per host role, mean `cpu_pct` (process rows: % of one core).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

MIN_ENERGY_SPAN_NS = 1_000_000_000
SampleArg: TypeAlias = "pd.DataFrame | Sequence[Mapping[str, Any]] | None"


def frame(samples: SampleArg) -> pd.DataFrame:
    if samples is None:
        return pd.DataFrame()
    return samples if isinstance(samples, pd.DataFrame) else pd.DataFrame(list(samples))


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df:
        return pd.Series(dtype=float)
    return pd.to_numeric(df[col], errors="coerce").astype(float).dropna()


def _f(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def _energy_j(gpu: pd.DataFrame) -> float | None:
    """Counter deltas summed over devices; None unless every device spans >= 1 s."""
    total, seen = 0.0, False
    for _, dev in gpu.groupby("device", dropna=False):
        rows = dev[pd.to_numeric(dev.get("energy_j"), errors="coerce").notna()].sort_values("t_ns")
        if len(rows) < 2 or int(rows["t_ns"].iloc[-1]) - int(rows["t_ns"].iloc[0]) < MIN_ENERGY_SPAN_NS:
            return None
        total += float(rows["energy_j"].iloc[-1]) - float(rows["energy_j"].iloc[0])
        seen = True
    return total if seen and total >= 0 else None


def gpu_figures(gpu: pd.DataFrame, window_s: float | None, output_tokens: float | None) -> dict[str, Any]:
    """Power, energy and per-token figures over GPU rows already cut to the window."""
    n_gpus = int(gpu["device"].nunique(dropna=False)) if len(gpu) else 0
    power = _num(gpu, "power_w")
    means = gpu.assign(p=pd.to_numeric(gpu.get("power_w"), errors="coerce")).groupby(
        "device", dropna=False)["p"].mean() if len(gpu) else pd.Series(dtype=float)
    energy = _energy_j(gpu) if len(gpu) else None
    tokens = output_tokens if output_tokens and output_tokens > 0 else None
    util, mem = _num(gpu, "gpu_util_pct"), _num(gpu, "mem_used_bytes")
    return {
        "gpus": n_gpus,
        "power_w_mean": _f(means.sum()) if means.notna().any() else None,
        "power_w_peak": _f(power.max()) if len(power) else None,
        "energy_j": energy,
        "j_per_output_token": energy / tokens if energy is not None and tokens else None,
        "tokens_per_joule": tokens / energy if energy and tokens else None,
        "gpu_s_per_1m_tokens": n_gpus * window_s / tokens * 1e6 if n_gpus and window_s and tokens else None,
        "gpu_util_pct_mean": _f(util.mean()) if len(util) else None,
        "mem_used_bytes_peak": int(mem.max()) if len(mem) else None,
    }


def host_figures(host: pd.DataFrame) -> dict[str, float | None]:
    """Mean cpu_pct per role (host, server, loadgen; cores pooled as "core")."""
    if not len(host) or "role" not in host:
        return {}
    out = {}
    for role, rows in host.groupby("role"):
        cpu = _num(rows, "cpu_pct")
        out[str(role)] = _f(cpu.mean()) if len(cpu) else None
    return out


def hardware_figures(samples: SampleArg, window: tuple[int, int] | None,
                     output_tokens: float | None) -> dict[str, Any] | None:
    """Every hardware figure of one step's window; None when there are no samples in it.

    With no window (no steady window could be found) every sample counts and window_s is
    the span of the samples.
    """
    df = frame(samples)
    if not len(df) or "t_ns" not in df:
        return None
    t = pd.to_numeric(df["t_ns"], errors="coerce")
    window_s: float | None
    if window is not None:
        df = df[(t >= window[0]) & (t <= window[1])]
        window_s = (window[1] - window[0]) / 1e9
    else:
        window_s = (t.max() - t.min()) / 1e9 if t.notna().any() else None
    if not len(df):
        return None
    role = df["role"] if "role" in df else pd.Series([None] * len(df), index=df.index)
    gpu = df[role == "gpu"]
    sources = sorted({str(s) for s in gpu.get("source", pd.Series(dtype=object)).dropna()})
    return {
        "sample_source": ",".join(sources) if sources else None,
        **gpu_figures(gpu, window_s, output_tokens),
        "cpu_pct_mean": host_figures(df[role != "gpu"]) or None,
    }


def _weighted(parts: list[tuple[float | None, float]]) -> float | None:
    pairs = [(v, w) for v, w in parts if v is not None and w > 0]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None


def run_hardware(parts: list[tuple[dict[str, Any] | None, float | None, float | None]]) -> dict[str, Any] | None:
    """Run-level figures from (step figures, window_s, output_tokens) of each step.

    Formula: energy and GPU-seconds add up over steps (energy only when every step with
    samples has it); means are weighted by window length; peaks are maxima.
    """
    steps: list[tuple[dict[str, Any], float, float]] = [
        (f, w or 0.0, t or 0.0) for f, w, t in parts if f is not None]
    if not steps:
        return None
    tokens = sum(t for _, _, t in steps)
    energies = [f["energy_j"] for f, _, _ in steps]
    energy = sum(energies) if all(e is not None for e in energies) else None
    gpu_s = sum(f["gpus"] * w for f, w, _ in steps)
    peak = lambda k: max((f[k] for f, _, _ in steps if f[k] is not None), default=None)  # noqa: E731
    roles = sorted({r for f, _, _ in steps for r in (f["cpu_pct_mean"] or {})})
    sources = sorted({s for f, _, _ in steps if f["sample_source"] for s in f["sample_source"].split(",")})
    return {
        "sample_source": ",".join(sources) if sources else None,
        "gpus": max(f["gpus"] for f, _, _ in steps),
        "power_w_mean": _weighted([(f["power_w_mean"], w) for f, w, _ in steps]),
        "power_w_peak": peak("power_w_peak"),
        "energy_j": energy,
        "j_per_output_token": energy / tokens if energy is not None and tokens else None,
        "tokens_per_joule": tokens / energy if energy and tokens else None,
        "gpu_s_per_1m_tokens": gpu_s / tokens * 1e6 if gpu_s and tokens else None,
        "gpu_util_pct_mean": _weighted([(f["gpu_util_pct_mean"], w) for f, w, _ in steps]),
        "mem_used_bytes_peak": peak("mem_used_bytes_peak"),
        "cpu_pct_mean": {r: _weighted([((f["cpu_pct_mean"] or {}).get(r), w) for f, w, _ in steps])
                         for r in roles} or None,
    }


def window_spans_ns(operators: Sequence[Mapping[str, Any]]) -> dict[int, tuple[int, int]]:
    """step -> (window_start_ns, window_end_ns) of its torch-profiler window, by step; steps
    whose rows carry no span (stored before the span was recorded) are left out."""
    spans: dict[int, tuple[int, int]] = {}
    for op in operators or []:
        a, b = op.get("window_start_ns"), op.get("window_end_ns")
        if a is not None and b is not None and not pd.isna(a) and not pd.isna(b):
            spans.setdefault(int(op["step"]), (int(a), int(b)))
    return dict(sorted(spans.items()))


def profiler_windows(operators: Sequence[Mapping[str, Any]], steps: Sequence[Mapping[str, Any]],
                     requests: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Each profiled step's torch-profiler window, seconds from the step's start, and how many
    of its requests were in flight during it (they ran under the profiler, hence slower).

    operators: stored operator rows (`step`, `window_start_ns`, `window_end_ns`); steps:
    rows with `step`, `t_start_ns`; requests: `step`, `t_send_ns`, `t_last_ns`.
    """
    starts = {int(s["step"]): s.get("t_start_ns") for s in steps}
    out = []
    for step, (a, b) in window_spans_ns(operators).items():
        t0 = starts.get(step)
        n = None
        if requests is not None and len(requests) and {"t_send_ns", "t_last_ns"} <= set(requests):
            mine = requests[requests["step"] == step]
            send = pd.to_numeric(mine["t_send_ns"], errors="coerce")
            last = pd.to_numeric(mine["t_last_ns"], errors="coerce").fillna(np.inf)
            n = int(((send < b) & (last > a)).sum())
        out.append({"step": step, "start_s": (a - t0) / 1e9 if t0 else None,
                    "end_s": (b - t0) / 1e9 if t0 else None, "requests_in_window": n})
    return out
