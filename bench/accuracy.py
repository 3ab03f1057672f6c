"""How exact is servelab's own load generator? Client-reported TTFT/ITL minus the server's truth.

Starts the built-in server in calibration mode (fixed TTFT and inter-chunk gap, no model; it
logs when it really wrote each chunk, on the same CLOCK_MONOTONIC as the client), drives it
with `servelab run` in open loop at each rate, and compares every request's client-side
first-chunk and chunk-gap times with the server's log.

    python bench/accuracy.py --rates 5,20 --duration 20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.calibration import errors_ms, match, parse_log  # noqa: E402
from servelab.config import ServerConfig  # noqa: E402
from servelab.targets import builtin_server  # noqa: E402
from store import queries  # noqa: E402


def server_log(path: Path) -> list[dict]:
    return parse_log(path.read_text().splitlines())


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
