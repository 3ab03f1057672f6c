"""Precise absolute-deadline sleeps for asyncio code, from one helper thread.

asyncio wakes up through epoll, whose timeout has millisecond granularity and is rounded
up, so `asyncio.sleep` to a deadline lands 0.5-2.5 ms late on Linux. A thread blocked in
`Condition.wait(timeout)` (a futex with a nanosecond timeout) wakes within ~0.1 ms, and
`call_soon_threadsafe` wakes the event loop at once through its self-pipe. Calibration
mode promises exact chunk times, so it sleeps through this timer.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time


def _resolve(futures: list[asyncio.Future]) -> None:
    for fut in futures:
        if not fut.done():  # the sleeper may have been cancelled meanwhile
            fut.set_result(None)


class DeadlineTimer:
    """`await timer.sleep_until(deadline_ns)` on the perf_counter_ns clock."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._seq = itertools.count()  # ties on a deadline never compare futures
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="servelab-deadline-timer", daemon=True)
        self._thread.start()

    async def sleep_until(self, deadline_ns: int) -> None:
        if deadline_ns <= time.perf_counter_ns():
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self._cond:
            heapq.heappush(self._heap, (deadline_ns, next(self._seq), loop, fut))
            if self._heap[0][3] is fut:  # the thread sleeps until the old head: wake it only
                self._cond.notify()  # when this deadline comes first (a futex wake per chunk)
        await fut

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                if not self._heap:
                    self._cond.wait()
                    continue
                delay_ns = self._heap[0][0] - time.perf_counter_ns()
                if delay_ns > 0:
                    self._cond.wait(delay_ns / 1e9)
                    continue
                self._wake_due()

    def _wake_due(self) -> None:
        """Resolve every due sleeper with one wake-up per loop: at thousands of chunks per
        second, one self-pipe write and GIL hand-off per chunk would cost more than the sends."""
        now = time.perf_counter_ns()
        due: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
        while self._heap and self._heap[0][0] <= now:
            _, _, loop, fut = heapq.heappop(self._heap)
            due.setdefault(loop, []).append(fut)
        for loop, futures in due.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, futures)

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=1)
