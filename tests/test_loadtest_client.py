"""One streaming request against hand-made raw HTTP servers: timings, statuses, reuse.

Runs gevent in the test process without monkey-patching (client.py only uses gevent's
own sockets); the servers are gevent StreamServers on 127.0.0.1:0.
"""

import json
import socket
import struct
import time

import gevent
import pytest
from gevent.server import StreamServer

from loadtest.client import Target, prime, stream_request
from loadtest.record import new_record

CHUNK = b'data: {"choices":[{"index":0,"text":"x"}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":%d},"servelab":{"queue_ms":0.5}}\n\n'
DONE = b"data: [DONE]\n\n"
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class RawServer:
    """Answers each request with `behaviour(sock, request_bytes)`; keeps connections alive."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.connections = 0
        self.requests: list[bytes] = []
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def _handle(self, sock, _addr):
        self.connections += 1
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(buf) < length:
                buf += sock.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + buf[:length])
            buf = buf[length:]
            if self.behaviour(sock, self.requests[-1]) == "close":
                sock.close()
                return

    def stop(self):
        self.server.stop()


@pytest.fixture
def serve():
    servers = []

    def start(behaviour):
        servers.append(RawServer(behaviour))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def stream(n_chunks, gap_s=0.0, done=True):
    def behaviour(sock, _req):
        sock.sendall(HEAD)
        for _ in range(n_chunks):
            gevent.sleep(gap_s)
            sock.sendall(chunked(CHUNK))
        sock.sendall(chunked(USAGE % n_chunks) + (chunked(DONE) if done else b"") + b"0\r\n\r\n")

    return behaviour


def send(url, timeout_s=5.0, pool=None, api_key=None, rid="w0-000000"):
    target = Target(url, api_key)
    pool = pool or target.pool(1, timeout_s)
    body = b'{"prompt":[65],"max_tokens":4,"stream":true}'
    rec = new_record(rid, "w0", 0, None, 4, 1)
    stream_request(pool, target.head("/v1/completions", rid, len(body)), body, rec, timeout_s)
    return rec


def test_ok_stream_records_every_chunk_as_it_arrives(serve):
    server = serve(stream(5, gap_s=0.02))
    rec = send(server.url)
    assert rec["status"] == "ok" and rec["http_status"] == 200 and rec["error"] is None
    gaps_ms = [(b - a) / 1e6 for a, b in zip(rec["chunk_ns"], rec["chunk_ns"][1:])]
    # 45-byte lines, 20 ms apart: a reader that waited for 1 KB would see them all at once.
    assert len(gaps_ms) == 4 and all(15 < g < 40 for g in gaps_ms)
    assert rec["t_send_ns"] < rec["t_first_ns"] == rec["chunk_ns"][0] <= rec["t_last_ns"]
    assert (rec["output_tokens_client"], rec["output_tokens"], rec["prompt_tokens"]) == (5, 5, 3)
    assert rec["server"] == {"queue_ms": 0.5}
    assert abs(rec["wall_send_ns"] - time.time_ns()) < 5e9


def test_keep_alive_connection_is_reused(serve):
    server = serve(stream(2))
    target = Target(server.url)
    pool = target.pool(1, 5.0)
    prime(pool)
    for i in range(3):
        assert send(server.url, pool=pool, rid=f"w0-{i:06d}")["status"] == "ok"
    assert server.connections == 1


def test_request_head_carries_id_and_key_but_the_record_never_does(serve):
    server = serve(stream(1))
    rec = send(server.url, api_key="sk-secret-123", rid="w0-000042")
    head = server.requests[0].decode()
    assert head.startswith("POST /v1/completions HTTP/1.1\r\n")
    assert "x-request-id: w0-000042" in head and "Authorization: Bearer sk-secret-123" in head
    assert "gzip" not in head  # a compressed stream could not be read line by line
    assert "sk-secret" not in json.dumps(rec)


def test_http_error_keeps_status_and_the_start_of_the_body(serve):
    body = b'{"error":{"message":"no such model"}}' + b"." * 1000

    def behaviour(sock, _req):
        sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    rec = send(serve(behaviour).url)
    assert (rec["status"], rec["http_status"]) == ("http_error", 404)
    assert rec["error"] == body[:500].decode() and rec["t_first_ns"] is None


def test_timeout_is_recorded_and_the_pool_stays_usable(serve):
    calls = []

    def behaviour(sock, req):
        calls.append(req)
        if len(calls) == 1:
            sock.sendall(HEAD + chunked(CHUNK))
            gevent.sleep(1.0)  # then stalls past the timeout
        else:
            stream(1)(sock, req)

    server = serve(behaviour)
    pool = Target(server.url).pool(1, 0.3)
    rec = send(server.url, timeout_s=0.3, pool=pool)
    assert rec["status"] == "timeout" and "0.3 s" in rec["error"]
    assert len(rec["chunk_ns"]) == 1  # what was seen before the timeout is kept
    assert 0.25e9 < rec["t_last_ns"] - rec["t_send_ns"] < 0.6e9
    # The one-connection pool was not leaked by the timeout.
    assert send(server.url, timeout_s=2, pool=pool)["status"] == "ok"


def test_refused_connection_is_a_conn_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec = send(f"http://127.0.0.1:{port}")
    assert rec["status"] == "conn_error" and "refused" in rec["error"].lower()
    assert rec["http_status"] is None and isinstance(rec["t_send_ns"], int)


def test_connection_closed_mid_stream_is_a_stream_error_with_the_chunks_seen(serve):
    def behaviour(sock, _req):
        sock.sendall(HEAD + chunked(CHUNK) + chunked(CHUNK))
        return "close"

    rec = send(serve(behaviour).url)
    assert rec["status"] == "stream_error" and len(rec["chunk_ns"]) == 2


def test_connection_reset_mid_stream_is_a_conn_error(serve):
    def behaviour(sock, _req):
        sock.sendall(HEAD + chunked(CHUNK))
        gevent.sleep(0.05)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
        return "close"

    rec = send(serve(behaviour).url)
    assert rec["status"] == "conn_error" and len(rec["chunk_ns"]) == 1


def test_error_event_mid_stream(serve):
    def behaviour(sock, _req):
        sock.sendall(HEAD + chunked(CHUNK) + chunked(b'data: {"error":{"message":"engine died"}}\n\n'))
        gevent.sleep(0.05)
        sock.sendall(b"0\r\n\r\n")

    rec = send(serve(behaviour).url)
    assert (rec["status"], rec["error"], rec["output_tokens_client"]) == ("stream_error", "engine died", 1)


def test_stream_without_done_is_a_stream_error(serve):
    rec = send(serve(stream(3, done=False)).url)
    assert rec["status"] == "stream_error" and "[DONE]" in rec["error"]
    assert rec["output_tokens"] == 3  # usage still kept


def test_cancelled_request_keeps_what_was_seen(serve):
    server = serve(stream(50, gap_s=0.02))
    rec = new_record("w0-000000", "w0", 0, None, 50, 1)
    target = Target(server.url)

    def run():
        stream_request(target.pool(1, 5), target.head("/v1/completions", "w0-000000", 2), b"{}", rec, 5)

    g = gevent.spawn(run)
    gevent.sleep(0.15)
    g.kill(block=True)
    assert rec["status"] == "cancelled" and 3 <= len(rec["chunk_ns"]) < 50
    assert rec["t_first_ns"] == rec["chunk_ns"][0] and rec["t_last_ns"] >= rec["chunk_ns"][-1]
