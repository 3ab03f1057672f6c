"""One streaming request over a keep-alive connection, timed line by line.

Drives geventhttpclient's connection pool and C response parser directly rather than
Locust's `FastHttpSession`: its `iter_lines`/`iter_content(1024)` waits for 1 KB before
yielding (which destroys TTFT and ITL), its user agent may resend a failed request, and the
request head is built out of our sight. Here the head and body go out in one `sendall`
(one write, so no Nagle delay) with `t_send_ns` taken just before it, and the body is read
with `readline`, which returns each SSE line as soon as its bytes are parsed; the line is
timestamped before anything else is done with it.

Imports gevent: only for the load-generator process (monkey-patched by `import locust`).
"""

from __future__ import annotations

import errno
import socket
import time
from urllib.parse import urlsplit

import gevent
from gevent import GreenletExit
from geventhttpclient.connectionpool import ConnectionPool, SSLConnectionPool
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError, HTTPSocketPoolResponse

from loadtest.record import MAX_ERROR_CHARS, apply_parser, finish_stream, set_failure
from loadtest.sse import CONTENT, ERROR, SSEParser

BLOCK_SIZE = 16 * 1024  # recv size; bigger only means fewer syscalls when lines pile up
OPEN_LOOP_POOL = 100_000  # connections an open-loop step may hold: in effect unbounded


class _AliveCheck(ConnectionPool):
    """Checks a pooled keep-alive connection with a non-blocking MSG_PEEK: idle and open
    means nothing to read. geventhttpclient's own check is a gevent `select()` that costs
    ~100 µs per request, which would all land in the send's lateness."""

    def _is_socket_alive(self, sock) -> bool:
        if sock is None or sock.fileno() < 0:
            return False
        timeout = sock.gettimeout()
        sock.settimeout(0.0)  # gevent sockets: raise instead of waiting for readability
        try:
            sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except ValueError:  # TLS sockets refuse flags: use the select() check
            return super()._is_socket_alive(sock)
        except OSError:
            return False
        finally:
            sock.settimeout(timeout)
        return False  # b"" is the peer's FIN; stray bytes make the connection unusable too


class _ResolveOnce(ConnectionPool):
    """Resolves the target's address once per pool. geventhttpclient resolves on every new
    connection, through gevent's resolver thread pool: a thread hop per connect that a
    busy machine stretches to many ms, all of it in the send's lateness."""

    _resolved = None

    def _resolve(self):
        if self._resolved is None:
            self._resolved = super()._resolve()
        return self._resolved


class _Pool(_AliveCheck, _ResolveOnce, ConnectionPool):
    pass


class _TLSPool(_AliveCheck, _ResolveOnce, SSLConnectionPool):
    pass


class _Expired(Exception):
    """The per-request timeout (a private class, so no other timeout is mistaken for it)."""


class Target:
    """The base URL, split once, and the fixed part of every request head."""

    def __init__(self, base_url: str, api_key: str | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad target URL {base_url!r}: expected http(s)://HOST[:PORT]")
        self.url = base_url
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        fixed = (
            f"Host: {parts.netloc.rpartition('@')[2]}\r\nUser-Agent: servelab-loadtest\r\n"
            "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        )
        if api_key:
            fixed += f"Authorization: Bearer {api_key}\r\n"
        self._fixed = fixed

    def head(self, path: str, req_id: str, body_len: int, method: str = "POST") -> bytes:
        return (
            f"{method} {self.prefix}{path} HTTP/1.1\r\n{self._fixed}"
            f"x-request-id: {req_id}\r\nContent-Length: {body_len}\r\n\r\n"
        ).encode("latin-1")

    def pool(self, size: int, timeout_s: float) -> ConnectionPool:
        """Keep-alive connections, opened on demand; `size` caps how many are open at once.

        No per-socket network timeout: gevent would arm a timer for every blocking recv
        (~20 µs each, per chunk); the per-request `gevent.Timeout` covers it instead."""
        cls = _TLSPool if self.https else _Pool
        return cls(self.host, self.port, self.host, self.port, size=size,
                   connection_timeout=min(timeout_s, 10.0),
                   network_timeout=None)  # type: ignore[arg-type]  # None: no timeout, which it supports


def prime(pool: ConnectionPool, n: int = 1) -> None:
    """Opens `n` connections now and parks them in the pool, so requests need not connect."""
    try:
        socks = [pool.get_socket() for _ in range(n)]
    except OSError:
        return  # the request will meet the same error and record it
    for sock in socks:
        pool.return_socket(sock)


def stream_request(pool: ConnectionPool, head: bytes, body: bytes, rec: dict, timeout_s: float) -> None:
    """Sends one request and fills `rec` (timings, status, usage); never raises except
    GreenletExit, after which `rec` says `cancelled` and holds what was seen."""
    parser = SSEParser()
    timer = gevent.Timeout(timeout_s, _Expired)
    timer.start()
    resp = None
    try:
        resp = _send(pool, head + body, rec)
        rec["http_status"] = code = resp.status_code
        if 200 <= code < 300:
            _read_events(resp, parser, rec)
            finish_stream(rec, parser)
        else:
            set_failure(rec, "http_error", _read_error_body(resp))
    except GreenletExit:
        rec["status"], rec["error"] = "cancelled", "still in flight when the load stopped"
        raise
    except Exception as exc:  # noqa: BLE001 - a failure is a record, never a crash
        _record_failure(rec, exc, resp is not None, timeout_s)
    finally:
        timer.close()
        if rec["t_last_ns"] is None:
            rec["t_last_ns"] = time.perf_counter_ns()
        if rec["status"] != "ok":
            apply_parser(rec, parser)  # keep usage and chunks seen before the failure
        if resp is not None:
            resp.release()  # back to the pool if the message is complete, else closed


def _record_failure(rec: dict, exc: Exception, responded: bool, timeout_s: float) -> None:
    if isinstance(exc, _Expired):
        set_failure(rec, "timeout", f"no complete response within {timeout_s:g} s")
    elif isinstance(exc, HTTPConnectionClosed):  # (a subclass of HTTPParseError)
        set_failure(rec, "conn_error", "connection closed before a response")
    elif isinstance(exc, HTTPParseError):  # EOF inside the body, or a garbled response
        set_failure(rec, "stream_error" if responded else "conn_error", f"bad HTTP response: {exc}")
    elif isinstance(exc, OSError):
        set_failure(rec, "conn_error", describe(exc))
    else:
        set_failure(rec, "stream_error", f"{type(exc).__name__}: {exc}")


def _send(pool: ConnectionPool, data: bytes, rec: dict) -> HTTPSocketPoolResponse:
    # Stamped once before connecting (so a failed connect has a time) and again just
    # before the bytes go out: connecting is not part of TTFT.
    rec["t_send_ns"], rec["wall_send_ns"] = time.perf_counter_ns(), time.time_ns()
    sock = pool.get_socket()
    rec["t_send_ns"], rec["wall_send_ns"] = time.perf_counter_ns(), time.time_ns()
    try:
        sock.sendall(data)
    except BaseException:
        pool.release_socket(sock)
        raise
    # Reads the status line and headers; on failure it releases the socket itself.
    return HTTPSocketPoolResponse(sock, pool, block_size=BLOCK_SIZE, method="POST")


def _read_events(resp: HTTPSocketPoolResponse, parser: SSEParser, rec: dict) -> None:
    """The hot loop: one iteration per SSE line, timestamp first."""
    readline, feed, clock = resp.readline, parser.feed, time.perf_counter_ns
    chunk_ns = rec["chunk_ns"]
    while True:
        line = readline(b"\n")
        t = clock()
        if not line:  # the HTTP message is complete: this was its last byte
            break
        kind = feed(line)
        if kind == CONTENT:
            chunk_ns.append(t)
        elif kind == ERROR:
            break  # the stream is broken; the connection is closed, not reused
    rec["t_last_ns"] = t


def _read_error_body(resp: HTTPSocketPoolResponse) -> str:
    data = resp.read(MAX_ERROR_CHARS * 4)  # UTF-8: at most 4 bytes a character
    text = data.decode("utf-8", "replace")[:MAX_ERROR_CHARS]
    return text or f"HTTP {resp.status_code} with an empty body"


def describe(exc: BaseException) -> str:
    """A one-line reason for a connection failure."""
    if isinstance(exc, socket.timeout):
        return "connection timed out"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED, errno.ECONNRESET, errno.EPIPE):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__
