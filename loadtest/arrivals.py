"""Time-varying arrivals: linear and step ramps, and timestamped trace replay.

Ramps are inhomogeneous Poisson processes made by time rescaling: if s_1 < s_2 < ... are
the arrivals of a rate-1 Poisson process, then t_i = L^-1(s_i) are the arrivals of a
process with rate r(t), where L(t) = integral_0^t r(u) du is the cumulative rate. So the
expected number of arrivals in [0, T] is L(T); with `exact` (the default, as in
`loadtest.schedules`) the unit-rate process is conditioned on round(L(T)) arrivals, so a
ramp offers exactly its mean count. Every generator yields int ns offsets from t0,
lazily, bounded like `loadtest.schedules` (`loadtest.offsets`). Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from loadtest.offsets import BLOCK, NS, bounded, exact_offsets


def _unit_poisson(seed: int, total: float | None = None) -> Iterator[float]:
    """Arrival times s_i of a rate-1 Poisson process (float seconds); with `total` = L(T),
    conditioned on round(total) arrivals in [0, total)."""
    if total is not None:
        yield from exact_offsets(round(total), total, 1.0, seed)
        return
    rng = np.random.default_rng(seed)
    s = 0.0
    while True:
        for gap in rng.exponential(1.0, BLOCK).tolist():
            s += gap
            yield s


def linear_ramp(rate_start: float, rate_end: float, duration_s: float, seed: int,
                max_requests: int | None = None, exact: bool = True) -> Iterator[int]:
    """Poisson arrivals whose rate goes linearly from rate_start to rate_end over the step.

    Formula: r(t) = r0 + (r1 - r0) t / T, L(t) = r0 t + a t^2 with a = (r1 - r0) / (2T),
    L^-1(s) = 2s / (r0 + sqrt(r0^2 + 4 a s)) (the root of a t^2 + r0 t - s = 0 that stays
    stable as a -> 0). Expected count (r0 + r1) / 2 * T.
    """
    if rate_start < 0 or rate_end < 0 or rate_start == rate_end == 0:
        raise ValueError("ramp rates must be >= 0 and not both 0")
    a = (rate_end - rate_start) / (2 * duration_s)
    total = (rate_start + rate_end) / 2 * duration_s if exact else None

    def offsets() -> Iterator[int]:
        for s in _unit_poisson(seed, total):
            disc = rate_start * rate_start + 4 * a * s
            if disc < 0:
                return  # a falling ramp extrapolated past zero rate: no more arrivals
            denom = rate_start + math.sqrt(disc)
            if denom <= 0:
                return
            yield round(2 * s / denom * NS)

    return bounded(offsets(), duration_s, max_requests)


def rate_steps(steps: Sequence[tuple[float, float]], duration_s: float, seed: int,
               max_requests: int | None = None, exact: bool = True) -> Iterator[int]:
    """Poisson arrivals at a piecewise-constant rate: [(rate, seconds), ...] in order.

    Formula: within segment j (start T_j, rate r_j, cumulative L_j at its start),
    t = T_j + (s - L_j) / r_j. A zero-rate segment is skipped; arrivals end after the
    last segment (or at duration_s, whichever is first). Expected count sum(r_j * d_j).
    """
    if not steps or any(r < 0 or d <= 0 for r, d in steps):
        raise ValueError("rate steps need rates >= 0 and durations > 0")
    total = _steps_cumulative(steps, duration_s) if exact else None

    def offsets() -> Iterator[int]:
        seg, seg_t, seg_l = 0, 0.0, 0.0  # current segment, its start time and cumulative rate
        for s in _unit_poisson(seed, total):
            while seg < len(steps) and s > seg_l + steps[seg][0] * steps[seg][1]:
                seg_l += steps[seg][0] * steps[seg][1]
                seg_t += steps[seg][1]
                seg += 1
            if seg == len(steps):
                return
            yield round((seg_t + (s - seg_l) / steps[seg][0]) * NS)

    return bounded(offsets(), duration_s, max_requests)


def _steps_cumulative(steps: Sequence[tuple[float, float]], until_s: float) -> float:
    """L(min(until_s, end of the last segment)) of a piecewise-constant rate."""
    total, t = 0.0, 0.0
    for rate, seconds in steps:
        total += rate * max(0.0, min(seconds, until_s - t))
        t += seconds
    return total


def trace_replay(t_s: np.ndarray, time_scale: float, start_s: float, duration_s: float,
                 max_requests: int | None = None) -> Iterator[int]:
    """The trace's own arrival times, sped up: requests at trace times t >= start_s.

    Formula: offset_i = round((t_i - start_s) / time_scale * 1e9), t_i in seconds since
    the trace's first request; time_scale = 60 replays an hour of trace in a minute.
    """
    if time_scale <= 0:
        raise ValueError("time_scale must be positive")
    first = int(np.searchsorted(t_s, start_s, side="left"))
    return bounded((round((float(t) - start_s) / time_scale * NS) for t in t_s[first:]),
                    duration_s, max_requests)


def trace_first_row(t_s: np.ndarray, start_s: float) -> int:
    """Index of the first trace row replayed when skipping `start_s` trace seconds."""
    return int(np.searchsorted(t_s, start_s, side="left"))
