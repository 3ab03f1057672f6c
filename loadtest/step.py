"""The live state of one load step inside the worker process.

Owns what the users share: the issuing budget (duration and max_requests), the counters
behind the progress lines, the set of requests in flight (so they can be cancelled and
still recorded), the spool, and the lifecycle events users and the controller wait on.
Users decide *when* to send; `Step` turns one send into one spool line.

Imports gevent: only for the load-generator process.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from geventhttpclient.connectionpool import ConnectionPool

from loadtest.client import Target
from loadtest.prompts import Body, BodyFactory
from loadtest.record import new_record, req_id
from loadtest.spec import WorkerSpec
from loadtest.spool import SpoolWriter
from loadtest.whole import send_request

OnRecord = Callable[[dict], None]
SPIN_NS = 2_000_000  # open loop: a request's greenlet starts this early and spins the rest
STALL_TICK_NS = 5_000_000  # the stall watch's tick


def spin_until(t_ns: int) -> None:
    """Yields to other greenlets (`sleep(0)`) until perf_counter_ns() >= t_ns.

    gevent's timers wake 0.3-1 ms late (the event loop polls with millisecond timeouts),
    so the open-loop dispatcher wakes SPIN_NS early, spawns the request's greenlet, and
    that greenlet spins to the exact time: sends land within microseconds of schedule.
    Spinning only runs when no other greenlet is ready, so it costs idle CPU, not latency.
    """
    while time.perf_counter_ns() < t_ns:
        gevent.sleep(0)


def watch_stalls(step: Step) -> None:
    """Keeps `step.stall_max_ns`: how late a 5 ms ticker in this process woke, at worst.

    Anything that keeps the load generator from noticing a chunk (a busy greenlet, the
    garbage collector, the machine pausing the process) makes the ticker late too, so this
    bounds how late the run's timestamps can be. A stall of S ms shows as at least
    S - 5 ms; gevent's timers themselves wake up to ~1 ms late. Costs ~200 wake-ups a second.
    """
    due = time.perf_counter_ns() + STALL_TICK_NS
    while True:
        gevent.sleep(max(0, due - time.perf_counter_ns()) / 1e9)
        now = time.perf_counter_ns()
        step.stall_max_ns = max(step.stall_max_ns, now - due)
        due = now + STALL_TICK_NS


def shared_t0(spec: WorkerSpec) -> int | None:
    """The spec's start time on this machine's perf_counter_ns clock, or None (start when ready)."""
    if spec.t0_ns is not None:
        return spec.t0_ns
    if spec.t0_wall_ns is not None:  # another machine's wall clock (NTP): convert once
        return time.perf_counter_ns() + (spec.t0_wall_ns - time.time_ns())
    return None


class Step:
    """One step's shared state; `send` is the only way a request is made and recorded."""

    def __init__(self, spec: WorkerSpec, target: Target, bodies: BodyFactory, spool: SpoolWriter,
                 on_record: OnRecord | None = None):
        self.load = spec.load
        self.producer = spec.producer
        self.target, self.bodies, self.spool = target, bodies, spool
        self.pick_target: Callable[[], Target] = lambda: target  # tiered load: a tier's key per request
        self.on_record = on_record
        self.go = Event()  # set at t0: every user starts then
        self.stopped = Event()  # no more requests will be issued
        self.drained = Event()  # stopped, and nothing is in flight
        self.aborted = Event()  # SIGTERM/SIGINT or a fatal spool error: cancel now
        self.t0_ns: int | None = None
        self.deadline_ns: int | None = None
        self.sent = self.done = self.ok = 0
        self.inflight: set[gevent.Greenlet] = set()
        self.fatal: str | None = None
        self.trace_t_s: Any = None  # the trace's arrival seconds, for arrival='trace'
        self.stop_ns: int | None = None
        self.scheduled: int | None = None  # open loop: arrivals the schedule held before stop
        self._cpu0 = 0.0
        self._users = 0
        self.ready = 0  # users connected and waiting for t0
        self.shard, self.shards, self.first_user = spec.shard, spec.shards, spec.first_user
        self.shared_t0_ns = shared_t0(spec)
        self.stall_max_ns = 0  # see watch_stalls
        self._stall_watch: gevent.Greenlet | None = None

    def next_user_id(self) -> int:
        """Unique within the run: each worker's users are numbered from its `first_user`."""
        self._users += 1
        return self.first_user + self._users - 1

    def start(self) -> int:
        """t0: the schedule's origin. Writes the `start` event and releases the users.

        With a shared t0 (several workers), waits for it; a worker ready only after it
        still uses it, so its first arrivals go out late and the lateness is recorded.

        Everything allocated so far (Locust, gevent, the prompts) is collected and frozen
        first: the cyclic collector then never scans it again, and its pauses, which land
        on whatever chunk is being read, stay short. (Unfrozen, a collection took up to
        ~4 ms in a 20 req/s run, enough to be a run's TTFT p99 error.) The collection blocks
        the event loop for tens of ms, so the loop's cached clock is refreshed after it: gevent
        times every timer from that clock, and a stale one would end the step that much early."""
        gc.collect()
        gc.freeze()
        gevent.get_hub().loop.update_now()
        if self.shared_t0_ns is not None:
            gevent.sleep(max(0, self.shared_t0_ns - SPIN_NS - time.perf_counter_ns()) / 1e9)
            spin_until(self.shared_t0_ns)
        self.t0_ns = self.shared_t0_ns or time.perf_counter_ns()
        self._cpu0 = time.process_time()
        self.deadline_ns = self.t0_ns + round(self.load.duration_s * 1e9)
        self.spool.write_meta({"event": "start", "t_ns": self.t0_ns, "wall_ns": time.time_ns(), "pid": os.getpid()})
        self._stall_watch = gevent.spawn(watch_stalls, self)
        self.go.set()
        return self.t0_ns

    def claim(self) -> int | None:
        """The sequence number of the next request, or None once issuing has stopped."""
        if self.stopped.is_set():
            return None
        if self.deadline_ns is None or time.perf_counter_ns() >= self.deadline_ns:  # None: not started
            self.stop_issuing()
            return None
        seq, self.sent = self.sent, self.sent + 1
        if self.load.max_requests is not None and self.sent >= self.load.max_requests:
            self.stop_issuing()  # this claim is the last one
        return seq

    def stop_issuing(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        self.stop_ns = time.perf_counter_ns()
        self.spool.write_meta({"event": "stop", "t_ns": self.stop_ns, "wall_ns": time.time_ns(),
                               "sent": self.sent, "completed": self.ok, "cpu_pct": self.cpu_pct(),
                               "stall_max_ms": self.stall_max_ms(), "capped": self.bodies.capped})
        self._check_drained()

    def send(self, pool: ConnectionPool, seq: int, user_id: int | None = None, t_sched_ns: int | None = None,
             body: Body | None = None) -> dict:
        """Sends request `seq` (open loop: at `t_sched_ns`, which must be at most ~SPIN_NS
        away) and spools its record, whatever happens (cancellation included)."""
        data, prompt_tokens, max_tokens = body if body is not None else self.bodies.next_body()
        rid = req_id(self.producer, seq)
        rec = new_record(rid, self.producer, user_id, t_sched_ns, max_tokens, prompt_tokens)
        head = self.pick_target().head(self.bodies.path, rid, len(data))
        me = gevent.getcurrent()
        self.inflight.add(me)  # (already there when started by `spawn_send`)
        try:
            if t_sched_ns is not None:
                spin_until(t_sched_ns)
            send_request(self.load.api, pool, self.target, head, data, rec, self.load.timeout_s)
        finally:
            self.inflight.discard(me)
            self._finish(rec)
        return rec

    def spawn_send(self, pool: ConnectionPool, seq: int, t_sched_ns: int, body: Body) -> None:
        """Open loop: `send` in a new greenlet, cancellable from this moment on."""
        self.inflight.add(gevent.spawn(self.send, pool, seq, None, t_sched_ns, body))

    def _finish(self, rec: dict) -> None:
        if rec["t_send_ns"] is None:  # cancelled before it could be sent
            rec["t_send_ns"], rec["wall_send_ns"] = rec["t_last_ns"], time.time_ns()
        try:
            self.spool.write_request(rec)
        except OSError as exc:
            self.fail(f"cannot write the spool {self.spool.requests_path}: {exc}")
        self.done += 1
        self.ok += rec["status"] == "ok"
        if self.on_record is not None:
            self.on_record(rec)
        self._check_drained()

    def _check_drained(self) -> None:
        # Counted, not `not self.inflight`: a request claimed a moment ago may not be in
        # flight yet, and must not be cancelled as if the drain were over.
        if self.stopped.is_set() and self.done >= self.sent:
            self.drained.set()

    def fail(self, message: str) -> None:
        if self.fatal is None:
            self.fatal = message
        self.aborted.set()

    def cancel_inflight(self, timeout_s: float = 10.0) -> None:
        """Cancels every request still in flight; each records itself as `cancelled`."""
        gevent.killall(list(self.inflight), block=True, timeout=timeout_s)

    def run_to_drained(self) -> None:
        """After `start`: issue until the deadline (or max_requests, or an abort), then wait
        up to drain_s for what is in flight, then cancel the rest (each records itself).

        The wait counts to the step's own deadline, not from now: gevent's timers run on the
        loop's cached clock, which a blocking pause leaves behind."""
        assert self.deadline_ns is not None, "start() sets the deadline"
        until_deadline_s = max(0, self.deadline_ns - time.perf_counter_ns()) / 1e9
        gevent.wait([self.stopped, self.aborted], count=1, timeout=until_deadline_s)
        self.stop_issuing()
        if not self.aborted.is_set():
            gevent.wait([self.drained, self.aborted], count=1, timeout=self.load.drain_s)
        self.stop_watch()
        self.cancel_inflight()

    def stop_watch(self) -> None:
        """Stops the stall watch: once nothing is in flight, a slow wind-down (Locust
        stopping its users) delays no measurement."""
        if self._stall_watch is not None:
            self._stall_watch.kill(block=False)

    def end(self) -> None:
        self.stop_watch()
        try:
            self.spool.write_meta({"event": "end", "t_ns": time.perf_counter_ns(), "cpu_pct": self.cpu_pct(),
                                   "stall_max_ms": self.stall_max_ms(), "sent": self.sent,
                                   "scheduled": self.scheduled})
        except OSError as exc:
            self.fail(f"cannot write the spool {self.spool.meta_path}: {exc}")

    def cpu_pct(self) -> float | None:
        """This process's CPU since t0, in % of one core: 100 * cpu seconds / wall seconds."""
        if self.t0_ns is None:
            return None
        wall = (time.perf_counter_ns() - self.t0_ns) / 1e9
        return round(100.0 * (time.process_time() - self._cpu0) / wall, 2) if wall > 0 else None

    def stall_max_ms(self) -> float | None:
        """The stall watch's worst lateness so far, in ms (None before t0)."""
        return None if self._stall_watch is None else round(self.stall_max_ns / 1e6, 3)

    def progress(self) -> tuple[float, int, int, int]:
        """(elapsed s since t0, sent, done, errors)."""
        elapsed = 0.0 if self.t0_ns is None else (time.perf_counter_ns() - self.t0_ns) / 1e9
        return elapsed, self.sent, self.done, self.done - self.ok
