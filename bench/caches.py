"""What the exact result cache and in-flight merging buy on the reference server.

1. Exact cache off vs on, side by side in one run: open-loop Poisson load near the
   server's capacity, `repeat_rate` of the requests (default 30%) repeating one of the
   worker's last 32 prompts (all greedy, so cacheable). Per setup: p50 E2E of the cache
   hits (requests whose server timings say `cache: "exact"`), p50 E2E overall, output
   tok/s (steady window), and the cost proxy

       generation-seconds per 1M output tokens served
         = sum over requests of server (prefill_ms + decode_ms) / 1e3
           / output tokens served * 1e6

   (hits cost 0 generation-seconds, merged followers are paid by their leader; with
   batching "none" generations never overlap, so the sum is the busy time of the engine).
   A third row adds merging to the cache: a repeat that arrives while its original is
   still queued or generating is a cache miss, but can follow the original.
2. Merging: N identical concurrent streaming requests against a fresh server with
   `merge_inflight` off and on; the server's counters `servelab_generations_total` and
   `servelab_requests_total` say how many generations served them.

    python bench/caches.py --rate 1.5 --duration 60 --repeat-rate 0.3 --merge-n 8
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from servelab.config import LoadConfig, RunConfig, ServerConfig  # noqa: E402


def cache_run(store: str, exact: bool, merge: bool, args) -> dict:
    """The figures of one open-loop run with the exact cache (and merging) off or on."""
    from servelab.results import run_summary
    from servelab.runner import execute_run
    from store import queries

    server = ServerConfig(model=args.model, exact_cache=exact, merge_inflight=merge)
    load = LoadConfig(mode="open", rate=args.rate, duration_s=args.duration, max_tokens=args.max_tokens,
                      prompt_tokens=args.prompt_tokens, repeat_rate=args.repeat_rate, seed=args.seed)
    run_id = execute_run(RunConfig(target="builtin", load=load, server=server), store)
    summary = run_summary(store, run_id)
    rows = queries.get_requests(store, run_id)
    rows = rows[rows["status"] == "ok"]
    e2e = ((rows["t_last_ns"] - rows["t_send_ns"]) / 1e6).astype(float).tolist()
    timings = list(rows["server"])
    hits = [ms for ms, t in zip(e2e, timings) if isinstance(t, dict) and t.get("cache") == "exact"]
    merged = sum(1 for t in timings if isinstance(t, dict) and t.get("cache") == "merged")
    gen_s = sum((t["prefill_ms"] + t["decode_ms"]) / 1e3 for t in timings  # followers: paid by the leader
                if isinstance(t, dict) and t.get("cache") != "merged")
    served = int(rows["output_tokens"].sum())
    return {"requests": len(rows), "hits": len(hits), "merged": merged,
            "hit_p50": statistics.median(hits) if hits else None,
            "p50": statistics.median(e2e) if e2e else None,
            "tok_s": summary["output_tok_s"], "gen_s_per_1m": gen_s / served * 1e6 if served else None}


def cache_table(args) -> None:
    print(f"exact cache: model={args.model} open loop poisson rate={args.rate}/s duration={args.duration}s "
          f"prompt={args.prompt_tokens} max_tokens={args.max_tokens} repeat_rate={args.repeat_rate} batching=none")
    print(f"{'cache':<10}{'reqs':>6}{'hits':>6}{'merged':>8}{'hit p50 ms':>12}{'p50 ms':>10}"
          f"{'out tok/s':>11}{'gen-s/1M tok':>14}")
    fmt = lambda v, spec: format("-" if v is None else format(v, spec[1:]), spec[:3])  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "caches.duckdb")
        for name, exact, merge in (("off", False, False), ("on", True, False), ("on+merge", True, True)):
            r = cache_run(store, exact, merge, args)
            print(f"{name:<10}{r['requests']:>6}{r['hits']:>6}{r['merged']:>8}{fmt(r['hit_p50'], '>12.2f')}"
                  f"{fmt(r['p50'], '>10.1f')}{fmt(r['tok_s'], '>11.1f')}{fmt(r['gen_s_per_1m'], '>14.0f')}", flush=True)


def _stream(url: str, body: bytes, out: list, i: int) -> None:
    """One streaming request, head and body in one write (as the load generator sends it)."""
    host, port = url.removeprefix("http://").split(":")
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    t0 = time.perf_counter()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + body)
        reply = b"".join(iter(lambda: sock.recv(65536), b""))
    out[i] = ((time.perf_counter() - t0) * 1e3, reply)


def _counter(text: str, name: str) -> float:
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith(name))


def merge_run(merge: bool, args) -> tuple[float, float, float, int]:
    """(generations, requests, max E2E ms, distinct outputs) for N identical concurrent requests."""
    import httpx

    from serving.launch import launch

    body = json.dumps({"prompt": list(range(65, 65 + 32)) * (args.prompt_tokens // 32), "stream": True,
                       "max_tokens": args.max_tokens, "temperature": 0, "ignore_eos": True}).encode()
    with launch(ServerConfig(model=args.model, merge_inflight=merge)) as server:
        out: list = [None] * args.merge_n
        threads = [threading.Thread(target=_stream, args=(server.url, body, out, i)) for i in range(args.merge_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        metrics = httpx.get(server.url + "/metrics").text
    texts = {"".join(c["text"] for line in reply.splitlines() if line.startswith(b"data: {")
                     for c in json.loads(line[6:])["choices"]) for _, reply in out}
    return (_counter(metrics, "servelab_generations_total"), _counter(metrics, "servelab_requests_total"),
            max(ms for ms, _ in out), len(texts))


def merge_table(args) -> None:
    print(f"merging: {args.merge_n} identical concurrent streaming requests, model={args.model} "
          f"prompt={args.prompt_tokens} max_tokens={args.max_tokens} batching=none")
    print(f"{'merge':<6}{'requests':>9}{'generations':>13}{'max E2E ms':>12}{'distinct outputs':>18}")
    for merge in (False, True):
        gens, reqs, e2e, distinct = merge_run(merge, args)
        print(f"{'on' if merge else 'off':<6}{reqs:>9.0f}{gens:>13.0f}{e2e:>12.0f}{distinct:>18}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--rate", type=float, default=1.5, help="requests/s, near capacity of batching none")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--repeat-rate", type=float, default=0.3)
    parser.add_argument("--merge-n", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-cache", action="store_true")
    args = parser.parse_args()
    print("load average at start (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())
    if not args.skip_cache:
        cache_table(args)
        print()
    merge_table(args)
    print("load average at end (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
