"""The floor under any gevent load generator on this machine: CPU per received chunk.

Locust runs on gevent, and servelab's client reads each stream in its own greenlet (a
blocking `recv` that parks the greenlet until the socket is readable), as Locust's own
FastHttpUser does. However lean the parsing, every chunk costs at least one wake-up of
that greenlet. This benchmark measures that floor with nothing else in the way: a minimal
uvloop server pinned to one core streams `--chunks` SSE chunks per connection, one every
`--gap-ms`, and a bare gevent client pinned to the other core opens `--rate` such streams
a second and only `recv`s them (mode `greenlet`), or also splits lines and `json.loads`
each event (mode `greenlet+parse`), or reads them from io-watcher callbacks on the hub
without a greenlet switch (mode `callback`). It prints the client's CPU per chunk and the
chunk rate one core could absorb at 100% busy (an upper bound: an accurate client needs
headroom, since chunks arrive in bursts).

    python bench/client_floor.py --rate 300 --duration 6

The same stream shape as `servelab calibrate` (32 chunks, 10 ms apart): at 500 req/s that
is 16,000 chunks a second for one client core.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

SERVER = r'''
import asyncio, sys, time
import uvloop
CHUNK = (b'data: {"id":"cmpl-0123456789abcdef01234567","object":"text_completion","created":1,'
         b'"model":"calibration","choices":[{"index":0,"text":"x","logprobs":null,"finish_reason":null}]}\n\n')
async def handle(reader, writer):
    await reader.readline()
    n, gap = int(sys.argv[2]), float(sys.argv[3]) / 1e3
    t0 = time.monotonic()
    for i in range(n):
        await asyncio.sleep(max(0.0, t0 + i * gap - time.monotonic()))
        writer.write(CHUNK)
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()
uvloop.run(main())
'''

CLIENT = r'''
from gevent import monkey; monkey.patch_all()
import json, socket, sys, time
import gevent
from gevent.event import Event
port, rate, duration, mode = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
loop = gevent.get_hub().loop
chunks = [0]

def greenlet_reader(parse):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"go\n")
    buf = b""
    while True:
        data = sock.recv(16384)
        t = time.perf_counter_ns()
        if not data:
            break
        if parse:
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.startswith(b"data:"):
                    json.loads(line[5:])
                    chunks[0] += 1
        else:
            chunks[0] += 1
    sock.close()

def callback_reader():
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"go\n")
    raw = sock._sock if hasattr(sock, "_sock") else sock
    sock.setblocking(False)
    watcher, finished = loop.io(sock.fileno(), 1), Event()
    def on_readable():
        t = time.perf_counter_ns()
        try:
            data = raw.recv(16384)
        except BlockingIOError:
            return
        if not data:
            watcher.stop()
            finished.set()
            return
        chunks[0] += 1
    watcher.start(on_readable)
    finished.wait()
    sock.close()

target = {"greenlet": lambda: greenlet_reader(False), "greenlet+parse": lambda: greenlet_reader(True),
          "callback": callback_reader}[mode]
cpu0, t0 = time.process_time(), time.perf_counter()
streams, i = [], 0
while time.perf_counter() - t0 < duration:
    streams.append(gevent.spawn(target))
    i += 1
    gevent.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
gevent.joinall(streams)
wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
print(json.dumps({"mode": mode, "streams": i, "chunks": chunks[0], "wall_s": wall, "cpu_s": cpu}))
'''


def pinned(core: int, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *cmd] if shutil.which("taskset") else cmd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=300.0, help="new streams a second")
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--chunks", type=int, default=32)
    ap.add_argument("--gap-ms", type=float, default=10.0)
    ap.add_argument("--modes", default="greenlet,greenlet+parse,callback")
    args = ap.parse_args()

    server = subprocess.Popen(pinned(0, [sys.executable, "-c", SERVER, "0", str(args.chunks), str(args.gap_ms)]),
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        print(f"{args.rate:g} streams/s x {args.chunks} chunks, {args.gap_ms:g} ms apart "
              f"({args.rate * args.chunks:,.0f} chunks/s); server on core 0, client on core 1")
        print(f"{'mode':<16}{'chunks':>9}{'client CPU':>12}{'us/chunk':>10}{'chunks/s on one core':>23}")
        for mode in args.modes.split(","):
            out = subprocess.run(pinned(1, [sys.executable, "-c", CLIENT, str(port), str(args.rate),
                                            str(args.duration), mode]), capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            us = 1e6 * r["cpu_s"] / r["chunks"]
            print(f"{mode:<16}{r['chunks']:>9,}{100 * r['cpu_s'] / r['wall_s']:>11.0f}%{us:>10.1f}"
                  f"{1e6 / us:>23,.0f}")
    finally:
        server.terminate()
        server.wait(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
