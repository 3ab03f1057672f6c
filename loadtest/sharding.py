"""How one step's load is split over N load generators (docs/architecture.md "Scaling out").

Closed loop: each worker gets its share of the users and of max_requests. Open loop: each
keeps the whole seeded schedule and takes every N-th arrival itself (loadtest/step.py). All
shards start at one t0, START_LEAD_S after the specs are written. Pure, and below both the
CLI (servelab/workers.py) and the Locust master (loadtest/master.py), so the remote load
generator runs without the CLI package.
"""

from __future__ import annotations

from servelab.config import LoadConfig

START_LEAD_S = 4.0  # Locust's import and the warm-up request, per worker, with room to spare


def split(total: int, n: int, i: int) -> int:
    """Share i of `total` split over n as evenly as possible (the first ones get the rest)."""
    return total // n + (i < total % n)


def shard_load(load: LoadConfig, n: int, i: int) -> LoadConfig:
    """Worker i's load: closed loop gets its share of users and max_requests; open loop
    keeps the whole schedule (the worker takes every n-th arrival itself)."""
    if n == 1 or load.mode == "open":
        return load
    m = load.max_requests
    return load.model_copy(update={"users": split(load.users, n, i),
                                   "max_requests": None if m is None else max(1, split(m, n, i))})
