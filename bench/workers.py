"""Does a second load-generator process help? 1 vs N workers against calibration mode.

Runs `servelab calibrate`'s measurement (servelab/calibrate.py) at each rate with 1 and
with N workers, on this machine, and prints per rate: achieved/requested rate, TTFT error
p50/p99 and their ratio (N workers / 1 worker), schedule lag p99, client CPU.

    python bench/workers.py --rates 100,200,400 --duration 10 --workers 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servelab.calibrate import CalibrateConfig, calibrate, parse_rates  # noqa: E402

KEYS = ("achieved_rate", "ratio", "ttft_err_p50_ms", "ttft_err_p99_ms", "itl_err_p99_ms",
        "schedule_lag_p99_ms", "client_cpu_pct", "matched", "ok")


def measure(rates: list[float], duration: float, workers: int, store: str) -> list[dict]:
    cfg = CalibrateConfig(rates=rates, duration_s=duration, workers=workers)
    return [{k: r.get(k) for k in ("rate", *KEYS)} for r in calibrate(cfg, store)["rows"]]


def _ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="100,200,400")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    rates = parse_rates(args.rates)
    with tempfile.TemporaryDirectory() as tmp:
        one = measure(rates, args.duration, 1, str(Path(tmp) / "w1.duckdb"))
        many = measure(rates, args.duration, args.workers, str(Path(tmp) / "wn.duckdb"))
    for a, b in zip(one, many):
        print(json.dumps({"rate": a["rate"], "one": a, f"workers_{args.workers}": b,
                          "ttft_p50_ratio": _ratio(b["ttft_err_p50_ms"], a["ttft_err_p50_ms"]),
                          "ttft_p99_ratio": _ratio(b["ttft_err_p99_ms"], a["ttft_err_p99_ms"])}), flush=True)


if __name__ == "__main__":
    main()
