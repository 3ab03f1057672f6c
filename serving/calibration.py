"""Calibration mode: a model-free backend whose streams have exact, known timings.

Every request streams exactly `max_tokens` one-character chunks: the first at
`t_recv + calib_ttft_ms`, then one every `calib_itl_ms`. Deadlines are absolute (computed
from t_recv), so a late wake-up never shifts the chunks after it. With `calib_log` set,
one JSON line per request records when each chunk really reached the transport, on
perf_counter_ns (CLOCK_MONOTONIC, shared with the load generator's process), so the load
generator's own measurement error can be computed chunk by chunk. Deadlines are kept by
`DeadlineTimer` (sub-millisecond), not `asyncio.sleep` (millisecond granularity).

Known capacity: with `calib_concurrency` = K, at most K streams generate at once and the
rest wait in arrival order; a stream's schedule starts when it gets a slot, so TTFT =
wait + calib_ttft_ms and each slot is held S = calib_ttft_ms + (max_tokens - 1) *
calib_itl_ms. That is an M/D/K queue whose capacity at a TTFT SLO follows from queueing
theory or a simulation (bench/capacity.py): the yardstick of the capacity search.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator

from servelab.config import ServerConfig
from serving.generation import Event, GenRequest, Generation
from serving.timer import DeadlineTimer

CALIB_TEXT = "x"


class CalibrationBackend:
    """Serves calibration generations and owns the log file."""

    params = 0  # no model

    def __init__(self, cfg: ServerConfig):
        self.ttft_ns = round(cfg.calib_ttft_ms * 1e6)
        self.itl_ns = round(cfg.calib_itl_ms * 1e6)
        self.timer = DeadlineTimer()
        self._log = open(cfg.calib_log, "a", encoding="utf-8") if cfg.calib_log else None
        self.slots = asyncio.Semaphore(cfg.calib_concurrency) if cfg.calib_concurrency else None
        self.queued = 0

    def start(self) -> None:
        # The timer thread needs the GIL to wake the loop; while the loop is busy it would wait
        # up to the switch interval (5 ms by default), which would show up as chunk lateness.
        sys.setswitchinterval(0.0005)

    def submit(self, request: GenRequest) -> Generation:
        return CalibrationGeneration(request=request, backend=self)

    def waiting(self) -> int:
        return self.queued  # without calib_concurrency every stream starts at once

    def write_log(self, record: dict) -> None:
        """One line per request, flushed at once: a killed server loses no finished request."""
        if self._log is not None:
            self._log.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._log.flush()

    def close(self) -> None:
        self.timer.close()
        if self._log is not None:
            self._log.close()
            self._log = None


class CalibrationGeneration(Generation):
    """One calibration stream: tokens on the fixed schedule, send times recorded."""

    def __init__(self, request: GenRequest, backend: CalibrationBackend):
        super().__init__(request=request)
        self.backend = backend
        self.chunk_ns: list[int] = []

    async def events(self) -> AsyncIterator[Event]:
        slots = self.backend.slots
        if slots is None:
            async for event in self._stream(self.request.t_recv_ns):
                yield event
            return
        self.backend.queued += 1
        try:
            await slots.acquire()  # FIFO: asyncio wakes waiters in the order they came
        finally:
            self.backend.queued -= 1
        try:
            t_slot = time.perf_counter_ns()
            self.timings.queue_ms = (t_slot - self.request.t_recv_ns) / 1e6
            async for event in self._stream(t_slot):
                yield event
        finally:
            slots.release()

    async def _stream(self, t0: int) -> AsyncIterator[Event]:
        n = self.request.max_tokens
        t_first = t0
        for i in range(n):
            await self.backend.timer.sleep_until(t0 + self.backend.ttft_ns + i * self.backend.itl_ns)
            now = time.perf_counter_ns()
            if i == 0:
                t_first = now
                self.timings.prefill_ms = (now - t0) / 1e6
            self.output_tokens = i + 1
            self.timings.decode_ms = (now - t_first) / 1e6
            yield Event(CALIB_TEXT, "length" if i == n - 1 else None)

    def chunk_sent(self, t_ns: int) -> None:
        self.chunk_ns.append(t_ns)

    def finish(self, t_done_ns: int) -> None:
        record = {"t_recv_ns": self.request.t_recv_ns, "chunk_ns": self.chunk_ns, "t_done_ns": t_done_ns}
        self.backend.write_log(record)
