"""The server process: bind, announce the address on one line, serve until SIGTERM/SIGINT.

The socket is bound here (not by uvicorn) so that port 0 can pick a free port and the
parent process learns the real one from the ready line:

    servelab serve: listening on http://127.0.0.1:PORT

That line is printed only after uvicorn is accepting on the socket and the backend (model
built and warmed up) is ready, so a parent may send requests as soon as it reads it.
"""

from __future__ import annotations

import signal
import socket
import sys
from typing import TextIO

import uvicorn

from servelab.config import ServerConfig
from serving.api import create_app

READY_PREFIX = "servelab serve: listening on "


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is
    # IPPROTO_TCP, and accepted sockets inherit it. With proto 0, a response written in two
    # parts (head, then body) waits for the client's delayed ACK: ~40 ms on a reused connection.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _AnnouncingServer(uvicorn.Server):
    """uvicorn.Server that prints the ready line once it accepts connections."""

    def __init__(self, config: uvicorn.Config, url: str, ready_stream: TextIO):
        super().__init__(config)
        self._url = url
        self._ready_stream = ready_stream

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            print(READY_PREFIX + self._url, file=self._ready_stream, flush=True)


def _exit_cleanly(signum, frame) -> None:
    raise SystemExit(0)


def run_server(cfg: ServerConfig, ready_stream: TextIO = sys.stdout) -> None:
    """Serve `cfg` until SIGTERM/SIGINT, then shut down gracefully and exit 0.

    uvicorn catches both signals, drains, then re-raises the signal to the handler that was
    installed before it: installing `_exit_cleanly` there turns "killed by SIGTERM" (status
    143) into a clean exit, since the shutdown really was clean.
    """
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    app = create_app(cfg)  # builds and warms the model before the socket is announced
    sock = bind_socket(cfg.host, cfg.port)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,  # access lines would carry client addresses and paths, never bodies
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    server = _AnnouncingServer(config, url_of(sock), ready_stream)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
