"""How exact is servelab's own load generator? Client-reported TTFT/ITL minus the server's truth.

Starts the built-in server in calibration mode (fixed TTFT and inter-chunk gap, no model; it
logs when it really wrote each chunk, on the same CLOCK_MONOTONIC as the client), drives it
with `servelab run` in open loop at each rate, and compares every request's client-side
first-chunk and chunk-gap times with the server's log.

    python bench/accuracy.py --rates 5,20 --duration 20
"""

from __future__ import annotations

import argparse
import bisect
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from servelab.config import ServerConfig  # noqa: E402
from servelab.targets import builtin_server  # noqa: E402
from store import queries  # noqa: E402


def server_log(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["t_recv_ns"])


def match(client: list[dict], server: list[dict], window_ns: int = 50_000_000) -> list[tuple]:
    """Pairs each client request with the server request received soonest after its send."""
    recv = [s["t_recv_ns"] for s in server]
    used: set[int] = set()
    pairs = []
    for c in sorted(client, key=lambda r: r["t_send_ns"]):
        i = bisect.bisect_left(recv, c["t_send_ns"])
        while i < len(recv) and (i in used) and recv[i] - c["t_send_ns"] < window_ns:
            i += 1
        if i < len(recv) and recv[i] - c["t_send_ns"] < window_ns:
            used.add(i)
            pairs.append((c, server[i]))
    return pairs


def errors_ms(pairs: list[tuple]) -> dict:
    ttft = [(c["t_first_ns"] - s["chunk_ns"][0]) / 1e6 for c, s in pairs]
    itl = []
    for c, s in pairs:
        cg, sg = np.diff(c["chunk_ns"]), np.diff(s["chunk_ns"])
        n = min(len(cg), len(sg))
        itl.extend(((cg[:n] - sg[:n]) / 1e6).tolist())
    q = lambda xs, p: float(np.percentile(xs, p)) if xs else None  # noqa: E731
    return {"matched": len(pairs), "ttft_err_p50_ms": q(ttft, 50), "ttft_err_p99_ms": q(ttft, 99),
            "itl_err_p50_ms": q(itl, 50), "itl_err_p99_ms": q(itl, 99)}


def measure(rate: float, duration: float, ttft_ms: float, itl_ms: float, chunks: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        log, store = Path(tmp) / "calib.jsonl", str(Path(tmp) / "bench.duckdb")
        cfg = ServerConfig(calibration=True, calib_ttft_ms=ttft_ms, calib_itl_ms=itl_ms,
                           calib_log=str(log))
        with builtin_server(cfg) as server:
            url = server.url
            out = subprocess.run(
                [sys.executable, "-m", "servelab.cli", "run", "--target", url, "--rate", str(rate),
                 "--arrival", "constant", "--duration", str(duration), "--max-tokens", str(chunks),
                 "--prompt-tokens", "16", "--warmup", "0", "--store", store, "--json"],
                capture_output=True, text=True, check=True)
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        reqs = queries.get_requests(store, summary["run_id"]).to_dict("records")
        ok = [r for r in reqs if r["status"] == "ok"]
        res = errors_ms(match(ok, server_log(log)))
        res.update(rate=rate, requests=len(reqs), ok=len(ok),
                   achieved_rate=summary["steps"][0].get("achieved_rate"),
                   reported_ttft_p50_ms=summary["ttft_ms"]["p50"],
                   reported_itl_p50_ms=summary["itl_ms"]["p50"],
                   schedule_lag_p99_ms=summary["schedule_lag_ms"]["p99"])
        return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="5,20")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--itl-ms", type=float, default=10.0)
    ap.add_argument("--chunks", type=int, default=32)
    args = ap.parse_args()
    print(f"calibration target: TTFT {args.ttft_ms} ms, ITL {args.itl_ms} ms, {args.chunks} chunks")
    for rate in (float(r) for r in args.rates.split(",")):
        print(json.dumps(measure(rate, args.duration, args.ttft_ms, args.itl_ms, args.chunks)),
              flush=True)


if __name__ == "__main__":
    main()
