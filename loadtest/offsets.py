"""What every arrival schedule shares: integer ns offsets from t0, bounded by the step.

Below `loadtest.schedules` (steady policies) and `loadtest.arrivals` (ramps, steps, trace
replay), which both yield offsets through `bounded`, and the exact-count process both
draw from (`exact_offsets`: docs in loadtest/schedules.py). Pure: no I/O, no clock.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

NS = 1_000_000_000
BLOCK = 4096  # random gaps drawn per numpy call
CHUNK = 65_536  # exact count: arrivals drawn per numpy call (memory stays bounded)


def bounded(offsets: Iterator[int], duration_s: float, max_requests: int | None) -> Iterator[int]:
    """Offsets strictly before the end of the step, at most `max_requests` of them."""
    end_ns = round(duration_s * NS)
    within = itertools.takewhile(lambda t: t < end_ns, offsets)
    return within if max_requests is None else itertools.islice(within, max_requests)


def exact_offsets(n: int, span_s: float, shape: float, seed: int) -> Iterator[float]:
    """n increasing arrival times (float seconds) in [0, span_s): gamma(shape) gaps
    conditioned on n arrivals in the span.

    Formula: g_1..g_{n+1} ~ Gamma(shape, 1), t_i = span * (g_1 + ... + g_i) / (g_1 + ... + g_{n+1}).
    At shape 1 these are n sorted uniforms on [0, span). Past CHUNK arrivals the span is
    cut into m equal parts whose counts are multinomial(n, 1/m each) (exact for Poisson),
    each part spaced the same way, so memory stays bounded for week-long steps.
    """
    rng = np.random.default_rng(seed)
    m = max(1, math.ceil(n / CHUNK))
    counts = rng.multinomial(n, [1.0 / m] * m).tolist() if m > 1 else [n]
    width = span_s / m
    for part, k in enumerate(counts):
        gaps = rng.gamma(shape, 1.0, k + 1)
        yield from (part * width + width * np.cumsum(gaps[:-1]) / gaps.sum()).tolist()
