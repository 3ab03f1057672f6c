"""The Locust users that offer load: closed loop (N users) and open loop (a dispatcher).

Both send through `Step.send`, which times the stream and spools the record; each record
is also fired as Locust's `request` event (see `worker.py`), so Locust's own stats and UI
work, but the spool record is the measurement. Imports locust: only ever imported inside
the load-generator process.
"""

from __future__ import annotations

import itertools
import time

from gevent.event import Event
from locust import User, constant, task

from loadtest.client import OPEN_LOOP_POOL, prime
from loadtest.schedules import schedule_for
from loadtest.step import SPIN_NS, Step

CONN_ERROR_PAUSE_S = 0.1  # closed loop: pause after a request that could not connect
OPEN_LOOP_PRIMED = 32  # open loop: keep-alive connections opened before t0


class ClosedLoopUser(User):
    """One of `users` concurrent users: sends its next request as soon as the last one
    ends (or `think_time_s` after it), over its own keep-alive connection, from t0 until
    the step stops issuing."""

    abstract = True
    step: Step
    wait_time = constant(0)

    def on_start(self) -> None:
        self.user_id = self.step.next_user_id()
        self.pool = self.step.target.pool(1, self.step.load.timeout_s)
        prime(self.pool)  # connect before t0, so the first request does not pay for it
        self.step.ready += 1
        self.step.go.wait()

    @task
    def send_one(self) -> None:
        seq = self.step.claim()
        if seq is None:
            park()
            return
        rec = self.step.send(self.pool, seq, user_id=self.user_id)
        pause = self.step.load.think_time_s  # the user reads the answer, then asks again
        if rec["status"] == "conn_error":
            # Recorded like any failure, but a dead target is not hammered in a tight loop
            # (thousands of refused connections a second would flood the spool).
            pause = max(pause, CONN_ERROR_PAUSE_S)
        if pause:
            self.step.stopped.wait(pause)


class OpenLoopUser(User):
    """The open-loop dispatcher: sleeps until just before each scheduled time and spawns a
    greenlet that sends that request at its time, never waiting for an earlier one (no
    coordinated omission). When it runs late, the request goes out at once and the
    lateness stays in the record (t_send_ns - t_sched_ns)."""

    abstract = True
    step: Step
    wait_time = constant(0)

    def on_start(self) -> None:
        # One shared pool: connections are reused when free and opened when all are busy.
        self.pool = self.step.target.pool(OPEN_LOOP_POOL, self.step.load.timeout_s)
        prime(self.pool, OPEN_LOOP_PRIMED)  # a connect (~ms on a busy target) would land in the lag
        self.step.ready += 1
        self.step.go.wait()

    @task
    def dispatch(self) -> None:
        step = self.step
        assert step.t0_ns is not None and step.deadline_ns is not None, "set by Step.start before go"
        # Scaled out: this worker's shard is every `shards`-th arrival of the one schedule.
        schedule = itertools.islice(schedule_for(step.load, step.trace_t_s), step.shard, None, step.shards)
        sent, pending = 0, []
        for offset in schedule:
            t_sched = step.t0_ns + offset
            body = step.bodies.next_body()  # built before the wait, so it is not part of the lateness
            wake_s = (t_sched - SPIN_NS - time.perf_counter_ns()) / 1e9
            if wake_s > 0 and step.stopped.wait(wake_s):
                pending = [offset]
                break  # stopped (deadline, signal) while waiting
            seq = step.claim()
            if seq is None:
                pending = [offset]
                break
            sent += 1
            step.spawn_send(self.pool, seq, t_sched, body)  # its greenlet spins to t_sched
        else:
            # Schedule exhausted: the step still lasts its full duration, so rates computed
            # over [t0, stop] are not inflated by an early stop.
            step.stopped.wait(max(0, step.deadline_ns - time.perf_counter_ns()) / 1e9)
        step.stop_issuing()
        # For the self-check: how many arrivals the schedule held before the step stopped.
        assert step.stop_ns is not None, "set by stop_issuing"
        stop_offset = step.stop_ns - step.t0_ns
        step.scheduled = sent + sum(1 for _ in itertools.takewhile(
            lambda o: o < stop_offset, itertools.chain(pending, schedule)))
        park()


def park() -> None:
    """Blocks until the runner stops this user. (Raising StopUser instead would leave a
    finished greenlet in the runner's group for a moment, which Locust complains about
    when the step ends right after.)"""
    Event().wait()


def bind(user_class: type[User], step: Step | None) -> type[User]:
    """A concrete subclass of `user_class` that works on `step` (Locust instantiates
    user classes itself, so the step travels as a class attribute)."""
    return type(user_class.__name__.replace("User", "") + "StepUser", (user_class,),
                {"abstract": False, "step": step})
