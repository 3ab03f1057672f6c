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
from collections.abc import Iterator

import numpy as np

from loadtest import arrivals
from loadtest.offsets import BLOCK, NS, bounded, exact_offsets
from servelab.config import LoadConfig

__all__ = ["NS", "constant", "exact_offsets", "gamma", "poisson", "schedule_for"]


def constant(rate: float, duration_s: float, max_requests: int | None = None) -> Iterator[int]:
    """One request every 1/rate seconds, the first at t0.

    Formula: offset_i = round(i * 1e9 / rate) (from i, not summed, so no rounding drift).
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    gap = NS / rate
    return bounded((round(i * gap) for i in itertools.count()), duration_s, max_requests)


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
        return bounded((round(t * NS) for t in seconds), duration_s, max_requests)
    return bounded(_gamma_offsets(rate, shape, seed), duration_s, max_requests)


def _gamma_offsets(rate: float, shape: float, seed: int) -> Iterator[int]:
    rng = np.random.default_rng(seed)
    t = 0.0  # float seconds, summed in float64 so gaps do not lose their fractions of ns
    while True:
        for gap in rng.gamma(shape, 1.0 / (rate * shape), BLOCK).tolist():
            t += gap
            yield round(t * NS)


def schedule_for(load: LoadConfig, trace_t_s=None) -> Iterator[int]:
    """The arrival schedule an open-loop `LoadConfig` asks for (`trace_t_s`: the trace's
    arrival seconds, for arrival='trace')."""
    if load.mode != "open":
        raise ValueError("only open-loop load has an arrival schedule (mode='open' with a rate)")
    n = load.max_requests
    exact = load.arrival_count == "exact"
    if load.arrival == "trace":
        if trace_t_s is None:
            raise ValueError("trace arrivals need the trace's timestamps")
        return arrivals.trace_replay(trace_t_s, load.time_scale, load.trace_start_s, load.duration_s, n)
    if load.arrival == "steps":
        return arrivals.rate_steps(load.rate_steps or [], load.duration_s, load.seed, n, exact)
    if load.rate is None:
        raise ValueError("only open-loop load has an arrival schedule (mode='open' with a rate)")
    if load.arrival == "constant":
        return constant(load.rate, load.duration_s, n)
    if load.arrival == "poisson":
        return poisson(load.rate, load.duration_s, load.seed, n, exact)
    if load.arrival == "gamma":
        return gamma(load.rate, load.duration_s, load.burstiness, load.seed, n, exact)
    if load.arrival == "ramp":
        return arrivals.linear_ramp(load.rate, load.rate_end or load.rate, load.duration_s, load.seed, n, exact)
    raise ValueError(f"unknown arrival policy {load.arrival!r}")
