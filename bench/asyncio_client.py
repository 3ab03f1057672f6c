"""A plain asyncio open-loop streaming client: the baseline servelab's load generator is held to.

No framework: one asyncio event loop, one new HTTP/1.1 connection per request (raw asyncio
streams), requests started at their constant-rate scheduled times, each response's SSE
lines read as they arrive. Every request's times are `time.perf_counter_ns()` (the same
CLOCK_MONOTONIC the calibration server logs on), written as one JSON line each:

    {"t_sched_ns", "t_send_ns", "t_first_ns", "chunk_ns": [...], "status"}

    python bench/asyncio_client.py --url http://127.0.0.1:8000 --rate 20 --duration 20 \
        --max-tokens 32 --out records.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def one(host: str, port: int, body: bytes, t_sched: int, out: list[dict]) -> None:
    rec: dict = {"t_sched_ns": t_sched, "chunk_ns": [], "t_first_ns": None, "status": "ok"}
    try:
        reader, writer = await asyncio.open_connection(host, port)
        head = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Accept: text/event-stream\r\nConnection: close\r\n\r\n").encode()
        rec["t_send_ns"] = time.perf_counter_ns()
        writer.write(head + body)
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            rec["status"] = status.decode(errors="replace").strip()
        while (line := await reader.readline()) not in (b"\r\n", b""):
            pass  # response headers
        while True:
            size_line = await reader.readline()  # chunked transfer encoding
            if not size_line:
                break
            size = int(size_line.strip() or b"0", 16)
            if size == 0:
                break
            data = await reader.readexactly(size + 2)
            t = time.perf_counter_ns()
            for part in data.split(b"\n"):
                if part.startswith(b"data: ") and part != b"data: [DONE]" and b'"text":""' not in part:
                    if b'"text"' in part:
                        rec["chunk_ns"].append(t)
                        if rec["t_first_ns"] is None:
                            rec["t_first_ns"] = t
        writer.close()
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        rec["status"] = f"error: {exc}"
    out.append(rec)


async def drive(url: str, rate: float, duration: float, max_tokens: int, prompt_tokens: int) -> list[dict]:
    parts = urlsplit(url)
    body = json.dumps({"model": "small", "prompt": [65] * prompt_tokens, "max_tokens": max_tokens,
                       "stream": True, "ignore_eos": True}).encode()
    out: list[dict] = []
    tasks = []
    period_ns = int(1e9 / rate)
    t0 = time.perf_counter_ns() + 200_000_000
    for i in range(int(rate * duration)):
        t_sched = t0 + i * period_ns
        delay = (t_sched - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(parts.hostname, parts.port, body, t_sched, out)))
    await asyncio.gather(*tasks)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    recs = asyncio.run(drive(args.url, args.rate, args.duration, args.max_tokens, args.prompt_tokens))
    with open(args.out, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    print(f"{len(recs)} requests, {sum(r['status'] == 'ok' for r in recs)} ok", file=sys.stderr)


if __name__ == "__main__":
    main()
