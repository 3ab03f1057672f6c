"""How faithfully does servelab replay a real trace? Arrival shape and schedule lag.

Replays data/traces/AzureLLMInferenceTrace_conv.csv (one hour, 19,366 requests) sped up
`--time-scale` times against the built-in server in calibration mode (fixed TTFT and
inter-chunk gap, no model), with outputs capped at `--output-cap` tokens so the server is
not the bottleneck, then reports:

- KS distance between the trace's inter-arrival times (divided by the time scale) and
  the achieved send inter-arrival times (scipy.stats.ks_2samp; 0 = same distribution);
- schedule lag (t_send - t_sched) p50/p99 (target p99 < 10 ms) and the run's self-check.

    python bench/trace_replay.py --time-scale 60 --duration 60
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadtest.traces import read_trace  # noqa: E402
from servelab.config import LoadConfig, RunConfig, ServerConfig  # noqa: E402
from servelab.results import run_summary  # noqa: E402
from servelab.runner import execute_run  # noqa: E402
from store import queries  # noqa: E402

TRACE = ROOT / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv"


def replay_config(args: argparse.Namespace) -> RunConfig:
    load = LoadConfig(mode="open", arrival="trace", workload="trace", trace_path=str(args.trace),
                      time_scale=args.time_scale, duration_s=args.duration, output_cap=args.output_cap,
                      max_context=args.max_context, drain_s=10, warmup_s=0)
    server = ServerConfig(calibration=True, calib_ttft_ms=args.ttft_ms, calib_itl_ms=args.itl_ms)
    return RunConfig(target="builtin", label="bench-trace-replay", load=load, server=server)


def trace_gaps_s(path: Path, time_scale: float, duration_s: float) -> np.ndarray:
    """The trace's inter-arrival times inside the replayed window, in replay seconds."""
    t = read_trace(path).t_s / time_scale
    return np.diff(t[t < duration_s])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--time-scale", type=float, default=60.0)
    ap.add_argument("--duration", type=float, default=60.0, help="replay seconds (3600/time-scale = all)")
    ap.add_argument("--output-cap", type=int, default=32)
    ap.add_argument("--max-context", type=int, default=2048, help="cap on prompt + output tokens")
    ap.add_argument("--ttft-ms", type=float, default=20.0)
    ap.add_argument("--itl-ms", type=float, default=2.0)
    ap.add_argument("--store", help="keep the run in this store (default: a temporary one)")
    args = ap.parse_args(argv)
    from scipy.stats import ks_2samp

    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or str(Path(tmp) / "bench.duckdb")
        run_id = execute_run(replay_config(args), store)
        summary = run_summary(store, run_id)
        req = queries.get_requests(store, run_id)
    sends = np.sort(req["t_send_ns"].dropna().to_numpy(dtype=np.int64))
    achieved = np.diff(sends) / 1e9
    expected = trace_gaps_s(args.trace, args.time_scale, args.duration)
    ks = ks_2samp(expected, achieved)
    check = summary["self_check"] or {}
    out = {
        "trace_requests_in_window": int(len(expected) + 1), "sent": int(len(sends)),
        "ok": int((req["status"] == "ok").sum()), "mean_rate_req_s": round(len(sends) / args.duration, 1),
        "ks_distance": round(float(ks.statistic), 4), "ks_pvalue": round(float(ks.pvalue), 4),
        "schedule_lag_p50_ms": check.get("schedule_lag_p50_ms"),
        "schedule_lag_p99_ms": check.get("schedule_lag_p99_ms"),
        "client_cpu_pct": check.get("client_cpu_pct_max"),
        "ttft_p50_ms": summary["ttft_ms"]["p50"], "ttft_p99_ms": summary["ttft_ms"]["p99"],
        "achieved_over_requested": check.get("achieved_over_requested"),
        "self_check_passed": check.get("passed"), "reasons": check.get("reasons"),
        "capped_requests": check.get("capped_requests"),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
