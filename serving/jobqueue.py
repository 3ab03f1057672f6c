"""The engine's wait queue: lower `priority` first, arrival order (FIFO) within a priority.

The same interface as the `queue.Queue` it replaces (`put`, `get`, `get_nowait`, `qsize`,
`queue.Empty` when nothing is there), so every batching mode takes from it unchanged.
`put(None)`, the shutdown sentinel, sorts after everything already queued: as with the
FIFO, requests queued before shutdown are still taken first.
"""

from __future__ import annotations

import itertools
import math
import queue


class JobQueue:
    """Thread-safe priority queue of generations (each has `request.priority`)."""

    def __init__(self) -> None:
        self._q: queue.PriorityQueue = queue.PriorityQueue()
        self._seq = itertools.count()  # ties broken by arrival; generations are never compared

    def put(self, gen) -> None:
        priority = math.inf if gen is None else gen.request.priority
        self._q.put((priority, next(self._seq), gen))

    def get(self, block: bool = True, timeout: float | None = None):
        return self._q.get(block, timeout)[2]

    def get_nowait(self):
        return self._q.get_nowait()[2]

    def peek(self):
        """The generation `get` would return next, without taking it; None when empty."""
        with self._q.mutex:
            return self._q.queue[0][2] if self._q.queue else None

    def qsize(self) -> int:
        return self._q.qsize()
