"""Arrival schedules for open-loop load: when each request should be sent.

A schedule is a lazy iterator of integer nanosecond offsets from the step's t0, strictly
bounded by `duration_s` and `max_requests`. Lazy, because a week-long step at a high rate
would not fit in a list. Pure: no I/O, no clock, no gevent; a new arrival policy (gamma,
ramps, trace replay) is one more small generator here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from servelab.config import LoadConfig

NS = 1_000_000_000
_BLOCK = 4096  # exponential gaps drawn per numpy call


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


def poisson(rate: float, duration_s: float, seed: int, max_requests: int | None = None) -> Iterator[int]:
    """A Poisson process: independent exponential gaps with mean 1/rate, from a seeded RNG.

    The process starts at t0, so the first arrival is one gap after it. The same seed
    always gives the same offsets.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    return _bounded(_poisson_offsets(rate, seed), duration_s, max_requests)


def _poisson_offsets(rate: float, seed: int) -> Iterator[int]:
    rng = np.random.default_rng(seed)
    t = 0.0  # float seconds, summed in float64 so gaps do not lose their fractions of ns
    while True:
        for gap in rng.exponential(1.0 / rate, _BLOCK).tolist():
            t += gap
            yield round(t * NS)


def schedule_for(load: LoadConfig) -> Iterator[int]:
    """The arrival schedule an open-loop `LoadConfig` asks for."""
    if load.mode != "open" or load.rate is None:
        raise ValueError("only open-loop load has an arrival schedule (mode='open' with a rate)")
    if load.arrival == "constant":
        return constant(load.rate, load.duration_s, load.max_requests)
    if load.arrival == "poisson":
        return poisson(load.rate, load.duration_s, load.seed, load.max_requests)
    raise ValueError(f"unknown arrival policy {load.arrival!r}")
