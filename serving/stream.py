"""The SSE transport: a raw ASGI response that timestamps each chunk as it leaves.

Starlette's StreamingResponse hides the moment a chunk is written. Here each SSE event is
its own `http.response.body` message and the timestamp is taken right after `await send`
returns: uvicorn writes to the socket transport synchronously inside `send`, so that is as
close to the bytes hitting the socket as an ASGI app can get. A concurrent `receive()`
watches for the client going away and cancels the generation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from starlette.responses import Response

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class TimedSSEResponse(Response):
    """Streams `(bytes, is_content)` pairs; calls `on_sent(t_ns)` after each content one."""

    def __init__(
        self,
        parts: AsyncIterator[tuple[bytes, bool]],
        on_sent: Callable[[int], None],
        on_disconnect: Callable[[], None],
        on_done: Callable[[int], None],
    ):
        # Deliberately not calling Response.__init__: there is no body to render.
        self.status_code = 200
        self.background = None
        self.raw_headers = list(SSE_HEADERS)
        self._parts = parts
        self._on_sent = on_sent
        self._on_disconnect = on_disconnect
        self._on_done = on_done

    async def __call__(self, scope, receive, send) -> None:
        body = asyncio.ensure_future(self._send_all(send))
        watch = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            done, _ = await asyncio.wait({body, watch}, return_when=asyncio.FIRST_COMPLETED)
            if body not in done:  # the client left first
                self._on_disconnect()
                body.cancel()
            await asyncio.gather(body, return_exceptions=True)
            failure = None if body.cancelled() else body.exception()
            if failure is not None:
                raise failure  # a backend bug: let uvicorn log it and close
        finally:
            watch.cancel()
            body.cancel()
            self._on_done(time.perf_counter_ns())

    async def _send_all(self, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for data, is_content in self._parts:
            await send({"type": "http.response.body", "body": data, "more_body": True})
            if is_content:
                self._on_sent(time.perf_counter_ns())
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _wait_disconnect(receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def run_unless_disconnected(coro, receive):
    """Await `coro`; if the client disconnects first, cancel it and return None."""
    work = asyncio.ensure_future(coro)
    watch = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        if work in done:
            return work.result()
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        return None
    finally:
        watch.cancel()
        work.cancel()
