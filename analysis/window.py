"""A step's steady window and which requests it measures.

Steady window: [t_start_ns + warmup_s, min(t_start_ns + duration_s, t_end_ns)], i.e.
warm-up and drain excluded. If the step has no usable start/duration (or that interval
is empty), fall back to [min t_send_ns, max t_last_ns] of the step's requests.
Both ends are inclusive. Populations are boolean masks over a RequestTable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from analysis.records import field
from analysis.table import RequestTable

Window = tuple[int, int]


def steady_window(step: Mapping[str, Any], table: RequestTable, rows: np.ndarray | None = None) -> Window | None:
    """The step's steady window in perf_counter ns, or None if nothing defines one.

    Formula: [t_start + warmup_s*1e9, min(t_start + duration_s*1e9, t_end)]
    """
    t0, t_end = field(step, "t_start_ns"), field(step, "t_end_ns")
    duration, warmup = field(step, "duration_s"), field(step, "warmup_s") or 0.0
    if t0 is not None:
        ends = [e for e in (t0 + round(duration * 1e9) if duration else None, t_end) if e is not None]
        start = t0 + round(warmup * 1e9)
        if ends and min(ends) > start:
            return start, min(ends)
    return request_span(table, table.all_rows() if rows is None else rows)


def request_span(table: RequestTable, rows: np.ndarray) -> Window | None:
    """Fallback window: [min t_send_ns, max t_last_ns] over the rows; None if empty.

    Formula: [min(t_send), max(t_last, or t_send when a request has no t_last)]
    """
    sends = table.times["t_send_ns"][rows]
    lasts = np.where(np.isnan(table.times["t_last_ns"]), table.times["t_send_ns"], table.times["t_last_ns"])[rows]
    sends, lasts = sends[~np.isnan(sends)], lasts[~np.isnan(lasts)]
    if not sends.size or not lasts.size or lasts.max() <= sends.min():
        return None
    return int(sends.min()), int(lasts.max())


def window_seconds(window: Window | None) -> float | None:
    """Length of a window in seconds.

    Formula: window_s = (end_ns - start_ns) / 1e9
    """
    return None if window is None else (window[1] - window[0]) / 1e9


def in_window(times: np.ndarray, window: Window | None) -> np.ndarray:
    """Formula: start <= t <= end (inclusive); False for NaN times or no window."""
    if window is None:
        return np.zeros(len(times), dtype=bool)
    with np.errstate(invalid="ignore"):
        return (times >= window[0]) & (times <= window[1])


def measure_times(table: RequestTable, mode: str | None) -> np.ndarray:
    """When each request counts as offered: scheduled time in open loop, else send time.

    Formula: t = t_sched_ns if open loop (and recorded) else t_send_ns
    """
    sched, send = table.times["t_sched_ns"], table.times["t_send_ns"]
    return send if mode == "closed" else np.where(np.isnan(sched), send, sched)


def measured(table: RequestTable, rows: np.ndarray, window: Window | None, mode: str | None) -> np.ndarray:
    """Requests offered inside the window (any status): the population for latency and SLOs."""
    return rows & in_window(measure_times(table, mode), window)


def completed(table: RequestTable, rows: np.ndarray, window: Window | None) -> np.ndarray:
    """ok requests whose last byte arrived inside the window: the population for throughput."""
    return rows & table.ok & in_window(table.times["t_last_ns"], window)


def sent(table: RequestTable, rows: np.ndarray, window: Window | None) -> np.ndarray:
    """Requests actually sent inside the window (for achieved_rate)."""
    return rows & in_window(table.times["t_send_ns"], window)
