"""The server's accepted connections have TCP_NODELAY: a non-streaming response is
written in two parts (head, then body), and without it the body waits for the client's
delayed ACK (~40 ms on every reused keep-alive connection)."""

from __future__ import annotations

import asyncio
import socket

from serving.server import bind_socket


def test_accepted_connections_have_nodelay():
    listener = bind_socket("127.0.0.1", 0)
    port = listener.getsockname()[1]
    seen: list[int] = []

    async def main() -> None:
        def on_connect(reader, writer) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=listener)  # as uvicorn does
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.02)
            writer.close()

    asyncio.run(main())
    assert listener.proto == socket.IPPROTO_TCP
    assert seen and seen[0] != 0
