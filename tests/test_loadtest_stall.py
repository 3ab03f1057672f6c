"""The worker's stall watch (loadtest/step.py): a blocked event loop shows up in the figure.

Runs gevent in the test process without monkey-patching, so `time.sleep` really blocks
the loop the way a long collection or a paused process would.
"""

import time
from types import SimpleNamespace

import gevent

from loadtest.step import STALL_TICK_NS, watch_stalls

MS = 1_000_000


def test_a_blocked_loop_is_reported_at_least_as_long_as_the_block_minus_a_tick():
    step = SimpleNamespace(stall_max_ns=0)
    watch = gevent.spawn(watch_stalls, step)
    try:
        gevent.sleep(0.03)  # a few ordinary ticks
        before = step.stall_max_ns
        time.sleep(0.08)  # nothing else can run for 80 ms
        gevent.sleep(0.03)
    finally:
        watch.kill()
    assert step.stall_max_ns >= 80 * MS - STALL_TICK_NS
    assert step.stall_max_ns > before
    assert step.stall_max_ns < 1_000 * MS  # and not some unrelated figure
