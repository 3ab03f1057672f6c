"""Arrival schedules for open-loop load: when each request should be sent.

A schedule is a lazy iterator of integer nanosecond offsets from the step's t0, strictly
bounded by `duration_s` and `max_requests`. Lazy, because a week-long step at a high rate
would not fit in a list. Pure: no I/O, no clock, no gevent; each arrival policy is one
small generator here (constant, Poisson, gamma); time-varying rates and trace replay are
in `loadtest.arrivals`.

Offered count. A Poisson process at rate r over T seconds offers r*T arrivals only on
average: one 20 s run at 20 req/s may offer 363 (9% light) or 440, and a capacity search
built on such runs mis-states capacity by as much. So by default (`exact=True`, config
`arrival_count: exact`) the random policies are conditioned on offering exactly
n = round(r*T) arrivals: for Poisson that is n sorted uniform times on [0, T) (the
conditional law of a Poisson process given its count); for gamma gaps, n + 1 Gamma(k)
gaps normalised to span the step (Dirichlet spacing, which is the same thing at k = 1).
Gaps keep their shape (exponential, or CV^2 = 1/k). `exact=False` (`arrival_count:
random`) is the unconditioned process.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from servelab.config import LoadConfig

NS = 1_000_000_000
_BLOCK = 4096  # exponential gaps drawn per numpy call
_CHUNK = 65_536  # exact count: arrivals drawn per numpy call (memory stays bounded)


def _bounded(offsets: Iterator[int], duration_s: float, max_requests: int | None) -> Iterator[int]:
    """Offsets strictly before the end of the step, at most `max_requests` of them."""
    end_ns = round(duration_s * NS)
    within = itertools.takewhile(lambda t: t < end_ns, offsets)
    return within if max_requests is None else itertools.islice(within, max_requests)


def constant(rate: float, duration_s: float, max_requests: int | None = None) -> Iterator[int]:
    """One request every 1/rate seconds, the first at t0.

    Formula: offset_i = round(i * 1e9 / rate) (from i, not summed, so no rounding drift).
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    gap = NS / rate
    return _bounded((round(i * gap) for i in itertools.count()), duration_s, max_requests)


def poisson(rate: float, duration_s: float, seed: int, max_requests: int | None = None,
            exact: bool = True) -> Iterator[int]:
    """A Poisson process: independent exponential gaps with mean 1/rate, from a seeded RNG.

    exact (default): conditioned on round(rate * duration_s) arrivals, i.e. that many
    sorted uniform times on [0, duration_s). Otherwise the process starts at t0, so the
    first arrival is one gap after it. The same seed always gives the same offsets.
    """
    return gamma(rate, duration_s, 1.0, seed, max_requests, exact)


def gamma(rate: float, duration_s: float, shape: float, seed: int,
          max_requests: int | None = None, exact: bool = True) -> Iterator[int]:
    """A renewal process with gamma gaps: bursty (shape < 1) or smoother (shape > 1) than Poisson.

    Formula: gap ~ Gamma(k=shape, scale=1/(rate*k)), so mean gap = 1/rate and
    CV^2 = var/mean^2 = 1/k; k = 1 is the Poisson process (exponential gaps).
    exact (default): conditioned on n = round(rate * duration_s) arrivals (exact_offsets).
    """
    if rate <= 0 or shape <= 0:
        raise ValueError("rate and shape must be positive")
    if exact:
        seconds = exact_offsets(round(rate * duration_s), duration_s, shape, seed)
        return _bounded((round(t * NS) for t in seconds), duration_s, max_requests)
    return _bounded(_gamma_offsets(rate, shape, seed), duration_s, max_requests)


def exact_offsets(n: int, span_s: float, shape: float, seed: int) -> Iterator[float]:
    """n increasing arrival times (float seconds) in [0, span_s): gamma(shape) gaps
    conditioned on n arrivals in the span.

    Formula: g_1..g_{n+1} ~ Gamma(shape, 1), t_i = span * (g_1 + ... + g_i) / (g_1 + ... + g_{n+1}).
    At shape 1 these are n sorted uniforms on [0, span). Past _CHUNK arrivals the span is
    cut into m equal parts whose counts are multinomial(n, 1/m each) (exact for Poisson),
    each part spaced the same way, so memory stays bounded for week-long steps.
    """
    rng = np.random.default_rng(seed)
    m = max(1, math.ceil(n / _CHUNK))
    counts = rng.multinomial(n, [1.0 / m] * m).tolist() if m > 1 else [n]
    width = span_s / m
    for part, k in enumerate(counts):
        gaps = rng.gamma(shape, 1.0, k + 1)
        yield from (part * width + width * np.cumsum(gaps[:-1]) / gaps.sum()).tolist()


def _gamma_offsets(rate: float, shape: float, seed: int) -> Iterator[int]:
    rng = np.random.default_rng(seed)
    t = 0.0  # float seconds, summed in float64 so gaps do not lose their fractions of ns
    while True:
        for gap in rng.gamma(shape, 1.0 / (rate * shape), _BLOCK).tolist():
            t += gap
            yield round(t * NS)


def schedule_for(load: LoadConfig, trace_t_s=None) -> Iterator[int]:
    """The arrival schedule an open-loop `LoadConfig` asks for (`trace_t_s`: the trace's
    arrival seconds, for arrival='trace')."""
    from loadtest import arrivals

    if load.mode != "open":
        raise ValueError("only open-loop load has an arrival schedule (mode='open' with a rate)")
    n = load.max_requests
    exact = load.arrival_count == "exact"
    if load.arrival == "trace":
        if trace_t_s is None:
            raise ValueError("trace arrivals need the trace's timestamps")
        return arrivals.trace_replay(trace_t_s, load.time_scale, load.trace_start_s, load.duration_s, n)
    if load.arrival == "steps":
        return arrivals.rate_steps(load.rate_steps, load.duration_s, load.seed, n, exact)
    if load.rate is None:
        raise ValueError("only open-loop load has an arrival schedule (mode='open' with a rate)")
    if load.arrival == "constant":
        return constant(load.rate, load.duration_s, n)
    if load.arrival == "poisson":
        return poisson(load.rate, load.duration_s, load.seed, n, exact)
    if load.arrival == "gamma":
        return gamma(load.rate, load.duration_s, load.burstiness, load.seed, n, exact)
    if load.arrival == "ramp":
        return arrivals.linear_ramp(load.rate, load.rate_end, load.duration_s, load.seed, n, exact)
    raise ValueError(f"unknown arrival policy {load.arrival!r}")
