"""What every arrival schedule shares: integer ns offsets from t0, bounded by the step.

Below `loadtest.schedules` (steady policies) and `loadtest.arrivals` (ramps, steps, trace
replay), which both yield offsets through `bounded`. Pure: no I/O, no clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

NS = 1_000_000_000
BLOCK = 4096  # random gaps drawn per numpy call


def bounded(offsets: Iterator[int], duration_s: float, max_requests: int | None) -> Iterator[int]:
    """Offsets strictly before the end of the step, at most `max_requests` of them."""
    end_ns = round(duration_s * NS)
    within = itertools.takewhile(lambda t: t < end_ns, offsets)
    return within if max_requests is None else itertools.islice(within, max_requests)
