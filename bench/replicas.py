"""What replicas buy, and what the job API costs, on the reference server.

1. Replicas: 1 server process (direct, no front) vs 2 behind HAProxy with `leastconn`,
   and 2 with `roundrobin`, side by side in one run; 1 torch thread per replica, batching
   none (one request at a time per replica, so a second replica is the only way to serve
   two at once). Closed-loop load at each `--users` level for `--duration` s; per setup
   and level: req/s, output tok/s, TTFT p50/p99, TPOT p99 and whether the SLO held.
   Capacity within the SLO = the highest output tok/s of a level that met it.
2. Job API overhead: the same requests (same seed, so the same prompts and lengths), one
   closed-loop user, sent as SSE streams, non-streaming bodies and jobs (submit, then
   long-poll); per API: requests, E2E p50/mean (for non-streaming and jobs, TTFT = E2E),
   the server's own time (queue + prefill + decode) p50, and per request E2E minus that
   server time (p50): what the API shape costs, robust to the generation speed drifting
   on a shared machine. The job's overhead = its E2E-server minus non-streaming's.

    python bench/replicas.py --model small --users 2,4 --duration 20 --slo "ttft_p99<=2000ms,tpot_p99<=60ms"
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from servelab.config import LoadConfig, RunConfig, ServerConfig  # noqa: E402

SETUPS = [("1 direct", 1, "leastconn"), ("2 leastconn", 2, "leastconn"), ("2 roundrobin", 2, "roundrobin")]


def one_run(store: str, server: ServerConfig, load: LoadConfig, slo) -> dict:
    from servelab.results import run_summary
    from servelab.runner import execute_run

    run_id = execute_run(RunConfig(target="builtin", load=load, server=server, slo=slo), store)
    return run_summary(store, run_id)


def cell(value, width: int, digits: int = 1) -> str:
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def replica_table(store: str, args, slo) -> None:
    print(f"replicas: model={args.model} threads=1 per replica batching={args.batching} closed loop "
          f"users={args.users} duration={args.duration}s max_tokens={args.max_tokens} "
          f"prompt_tokens={args.prompt_tokens} slo={args.slo!r}")
    print(f"{'setup':<14}{'users':>6}{'req/s':>8}{'out tok/s':>11}{'TTFT p50':>10}{'TTFT p99':>10}"
          f"{'TPOT p99':>10}{'SLO':>5}")
    capacity: dict[str, float | None] = {}
    for name, replicas, balance in SETUPS:
        server = ServerConfig(model=args.model, threads=1, batching=args.batching, replicas=replicas,
                              balance=balance, max_batch_size=args.max_batch_size)
        best = None
        for users in args.users:
            load = LoadConfig(mode="closed", users=users, duration_s=args.duration, max_tokens=args.max_tokens,
                              prompt_tokens=args.prompt_tokens, seed=args.seed)
            s = one_run(store, server, load, slo)
            met = s.get("slo_met")
            if met and (best is None or s["output_tok_s"] > best):
                best = s["output_tok_s"]
            print(f"{name:<14}{users:>6}{cell(s['req_s'], 8, 2)}{cell(s['output_tok_s'], 11)}"
                  f"{cell(s['ttft_ms']['p50'], 10)}{cell(s['ttft_ms']['p99'], 10)}{cell(s['tpot_ms']['p99'], 10)}"
                  f"{('yes' if met else 'no'):>5}", flush=True)
        capacity[name] = best
    print("capacity within the SLO (output tok/s): " + ", ".join(
        f"{name} {cell(v, 0, 1).strip()}" for name, v in capacity.items()))


def job_table(store: str, args) -> None:
    print(f"job API overhead: model={args.model} 1 closed-loop user duration={args.duration}s "
          f"max_tokens={args.job_max_tokens} prompt_tokens={args.prompt_tokens} (same seed: same requests)")
    print(f"{'api':<11}{'requests':>9}{'E2E p50 ms':>12}{'E2E mean ms':>13}{'server ms p50':>15}"
          f"{'E2E-server p50':>16}{'job queue ms':>14}")
    from store import queries

    outside = {}
    for api in ("stream", "nonstream", "job"):
        load = LoadConfig(mode="closed", users=1, duration_s=args.duration, max_tokens=args.job_max_tokens,
                          prompt_tokens=args.prompt_tokens, seed=args.seed, api=api)
        s = one_run(store, ServerConfig(model=args.model, threads=1), load, [])
        rows = queries.get_requests(store, s["run_id"])
        ok = rows[rows["status"] == "ok"]
        # Per request: time the client waited beyond the server's own queue + prefill +
        # decode, i.e. what the API shape itself costs (HTTP, polling, serialisation),
        # robust to the generation speed drifting on a shared machine.
        server = [t["queue_ms"] + t["prefill_ms"] + t["decode_ms"] for t in ok["server"]]
        e2e = ((ok["t_last_ns"] - ok["t_send_ns"]) / 1e6).astype(float).tolist()
        outside[api] = statistics.median(e - g for e, g in zip(e2e, server))
        queued = [t["job_queue_ms"] for t in ok["server"] if "job_queue_ms" in t]
        print(f"{api:<11}{s['requests']:>9}{cell(s['e2e_ms']['p50'], 12, 2)}{cell(s['e2e_ms']['mean'], 13, 2)}"
              f"{cell(statistics.median(server), 15, 2)}{cell(outside[api], 16, 2)}"
              f"{cell(statistics.median(queued) if queued else None, 14, 3)}", flush=True)
    print(f"job overhead over non-streaming (E2E-server p50): {outside['job'] - outside['nonstream']:+.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--batching", default="none", choices=("none", "static", "continuous"))
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--users", type=lambda t: [int(u) for u in t.split(",")], default=[2, 4])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--job-max-tokens", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--slo", default="ttft_p99<=2000ms,tpot_p99<=60ms")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-replicas", action="store_true")
    parser.add_argument("--skip-jobs", action="store_true")
    args = parser.parse_args()
    from analysis.slo import parse_slo

    slo = parse_slo(args.slo)
    print("load average at start (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "bench.duckdb")
        if not args.skip_replicas:
            replica_table(store, args, slo)
            print()
        if not args.skip_jobs:
            job_table(store, args)
    print("load average at end (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
