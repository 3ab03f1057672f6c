"""DeadlineTimer: never early, rarely late, and cancellable."""

from __future__ import annotations

import asyncio
import time

from serving.timer import DeadlineTimer


def test_sleepers_wake_at_their_deadlines_never_before():
    timer = DeadlineTimer()

    async def sleeper(offset_ms: float) -> float:
        deadline = start + int(offset_ms * 1e6)
        await timer.sleep_until(deadline)
        return (time.perf_counter_ns() - deadline) / 1e6

    async def main() -> list[float]:
        return await asyncio.gather(*(sleeper(ms) for ms in (30, 10, 20, 10, 0, -5)))

    try:
        start = time.perf_counter_ns()
        late_ms = asyncio.run(main())
    finally:
        timer.close()
    assert min(late_ms) >= 0
    assert sorted(late_ms)[len(late_ms) // 2] < 5  # shared VM: median, not max


def test_a_cancelled_sleeper_does_not_break_the_others():
    timer = DeadlineTimer()

    async def main() -> None:
        now = time.perf_counter_ns()
        doomed = asyncio.ensure_future(timer.sleep_until(now + 20_000_000))
        survivor = asyncio.ensure_future(timer.sleep_until(now + 30_000_000))
        await asyncio.sleep(0.005)
        doomed.cancel()
        await asyncio.wait_for(survivor, timeout=2)
        assert doomed.cancelled()

    try:
        asyncio.run(main())
    finally:
        timer.close()
