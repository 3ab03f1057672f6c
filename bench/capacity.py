"""How exact is the capacity search? Sweeps of known-capacity servers against the truth.

The yardstick: the built-in server's calibration mode with `calib_concurrency: K` lets K
streams generate at once and queues the rest (serving/calibration.py), so each request
holds a slot S = ttft + (max_tokens - 1) * itl and TTFT = wait + ttft: an M/D/K queue
fed by the sweep's own arrival process (a Poisson process conditioned on round(rate*T)
arrivals, the very offsets loadtest.schedules generates for a seed). One repeat of a
sweep searches one seed's window for the rate where its p99 TTFT crosses the threshold;
the truth is that crossing's mean over 300 other seeds, computed here by simulating the
queue over the same window (T seconds, the first 10% excluded, p99 with numpy's linear
interpolation). A high percentile over a short window is biased low near saturation (a
queue building up needs time), so this finite-window truth is above the steady state's,
which is printed beside it (600 s windows).

Then `--sweeps N` capacity sweeps per server (3 repeats each by default) and the table:
estimate, interval, truth, error, and whether the interval holds the truth.

    python bench/capacity.py --sweeps 5 --duration 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def window_p99_ms(rate: float, seed: int, k: int, service_s: float, ttft_s: float, duration_s: float) -> float:
    """p99 TTFT (ms) of one window of an M/D/K FIFO queue, empty at t0, fed by exactly the
    arrivals the load generator sends for this rate and seed (loadtest.schedules)."""
    from loadtest.schedules import exact_offsets

    arrivals = np.fromiter(exact_offsets(round(rate * duration_s), duration_s, 1.0, seed), float)
    free = np.zeros(k)  # when each slot is next free
    waits = np.empty(arrivals.size)
    for i, t in enumerate(arrivals):
        j = int(np.argmin(free))
        start = max(t, free[j])
        waits[i] = start - t
        free[j] = start + service_s
    measured = waits[arrivals >= 0.1 * duration_s]  # the steady window: warm-up excluded
    return float(np.percentile(measured + ttft_s, 99) * 1000) if measured.size else float("nan")


def seed_crossing(seed: int, k: int, service_s: float, ttft_s: float, threshold_ms: float,
                  duration_s: float) -> float:
    """The rate at which one seed's window crosses the SLO: what one repeat of a sweep estimates."""
    lo, hi = 0.02 * k / service_s, 2.0 * k / service_s
    for _ in range(20):
        mid = (lo + hi) / 2
        if window_p99_ms(mid, seed, k, service_s, ttft_s, duration_s) <= threshold_ms:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def truth(k: int, service_s: float, ttft_s: float, threshold_ms: float, duration_s: float,
          seeds: int = 300) -> tuple[float, float, float]:
    """(mean, median, sd) of the per-seed crossings over `seeds` windows (seeds 10^6 + i, none
    of which a sweep uses): the mean is what a sweep's estimate (the mean of its repeats) aims at."""
    c = np.array([seed_crossing(10**6 + i, k, service_s, ttft_s, threshold_ms, duration_s) for i in range(seeds)])
    return float(c.mean()), float(np.median(c)), float(c.std(ddof=1))


def spec(k: int, args: argparse.Namespace, seed: int) -> dict:
    return {
        "name": f"known-k{k}", "slo": f"ttft_p99<={args.threshold_ms:g}ms",
        "duration_s": args.duration, "drain_s": 3, "repeats": args.repeats, "seed": seed,
        "search": {"kind": "capacity", "low": 0.5, "high": 4 * k / args.service_s, "rel_tol": args.rel_tol},
        "workload": {"max_tokens": args.max_tokens, "prompt_tokens": 16},
        "profile": {"enabled": False},
        "setups": {f"k{k}": {"server": {"calibration": True, "calib_concurrency": k,
                                        "calib_ttft_ms": args.ttft_ms, "calib_itl_ms": args.itl_ms}}},
    }


def run_sweep(k: int, args: argparse.Namespace, seed: int, store: Path) -> tuple[dict, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec(k, args, seed), fh)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "servelab.cli", "sweep", fh.name, "--store", str(store), "--json"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout), time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ks", default="4,8", help="slots of the known-capacity servers")
    ap.add_argument("--sweeps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--rel-tol", type=float, default=0.05)
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--itl-ms", type=float, default=10.0)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--threshold-ms", type=float, default=250.0)
    ap.add_argument("--truth-only", action="store_true", help="print the truths and stop")
    ap.add_argument("--store", default=None, help="keep the sweeps in this store (default: a temporary one)")
    args = ap.parse_args()
    args.service_s = (args.ttft_ms + (args.max_tokens - 1) * args.itl_ms) / 1000
    ttft_s = args.ttft_ms / 1000
    print(f"servers: S = {args.service_s * 1000:g} ms per request, SLO ttft_p99<={args.threshold_ms:g}ms, "
          f"window {args.duration:g} s (10% warm-up)")
    rows = []
    for k in (int(x) for x in args.ks.split(",")):
        t_window, t_median, t_sd = truth(k, args.service_s, ttft_s, args.threshold_ms, args.duration)
        t_steady = truth(k, args.service_s, ttft_s, args.threshold_ms, 600.0, seeds=5)[0]
        print(f"K={k}: max throughput {k / args.service_s:.2f} req/s; truth {t_window:.3f} req/s for a "
              f"{args.duration:g} s window (median {t_median:.3f}, one window's sd {t_sd:.3f}), "
              f"{t_steady:.3f} in steady state (600 s windows)", flush=True)
        if args.truth_only:
            continue
        store = Path(args.store) if args.store else Path(tempfile.mkdtemp()) / "capacity.duckdb"
        for i in range(args.sweeps):
            result, seconds = run_sweep(k, args, seed=1000 * i, store=store)
            cap = result["setups"][0]["capacity_req_s"]
            inside = cap["ci_low"] is not None and cap["ci_low"] <= t_window <= cap["ci_high"]
            err = None if cap["value"] is None else cap["value"] / t_window - 1
            rows.append((k, i, cap, t_window, err, inside, result["setups"][0]["points_used"], seconds))
            print(f"  K={k} sweep {i}: {cap['value']:.3f} [{cap['ci_low']:.3f}, {cap['ci_high']:.3f}] "
                  f"truth {t_window:.3f} error {100 * err:+.1f}% inside {inside} "
                  f"points {rows[-1][6]} {seconds:.0f} s", flush=True)
    if rows:
        print("\n| K | sweep | capacity req/s [95% interval] | truth | error | truth inside | points | wall s |")
        print("|---|---|---|---|---|---|---|---|")
        for k, i, cap, t, err, inside, pts, sec in rows:
            print(f"| {k} | {i} | {cap['value']:.2f} [{cap['ci_low']:.2f}, {cap['ci_high']:.2f}] | {t:.2f} | "
                  f"{100 * err:+.1f}% | {'yes' if inside else 'no'} | {pts} | {sec:.0f} |")


if __name__ == "__main__":
    main()
