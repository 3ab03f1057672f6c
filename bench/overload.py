"""What admission control buys under overload: a protected tier keeps its SLO.

The built-in server (continuous batching) gets open-loop Poisson load at `--factor` times
its measured capacity, 20% of the requests (`--high-share`) with the key of tier `high`
and the rest with the key of tier `low`. Same load (same seed), four setups, one run:

- none: both tiers served alike, FIFO, no limits, unbounded queue (tiers only label them)
- reject: `high` protected and first in the wait queue; `low` token-bucket limited to
  `--low-rate-frac` x capacity, and refused (503) when `--max-queue` requests wait
- reserve: as reject, and `--reserved-rows` rows of the batch are left to `high`, so a
  high request never waits for a full batch of low ones to free a row
- degrade: as reject, but `low` requests arriving while `--degrade-queue` or more wait
  get `max_tokens` = `--degrade-max-tokens`; 503 only at `--max-queue`

Capacity = completed requests/s of a closed loop with 2 x max_batch_size users.
Per setup and tier: requests sent, served in full, degraded, refused (429 rate limit,
503 overloaded), other errors; TTFT and E2E p99 of the served ones; SLO attainment =
fraction of SENT requests served within both `--ttft-slo-ms` and `--e2e-slo-ms`
(refusals and errors count as misses). Accounting: the load generator's own count of
requests sent must equal the stored records and the sum of their outcomes (nothing is
dropped silently). Tier per request: the server's `servelab.tier`, or the `tier` of the
refusal's JSON error.

    python bench/overload.py --model tiny --duration 30 --factor 2
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from servelab.config import API_KEYS_ENV, LoadConfig, RunConfig, ServerConfig  # noqa: E402

OUTCOMES = ("full", "degraded", "429", "503", "other")


def server_for(setup: str, args, capacity: float) -> ServerConfig:
    base = dict(model=args.model, batching="continuous", max_batch_size=args.max_batch_size,
                default_tier=None)
    if setup == "none":
        return ServerConfig(**base, tiers={"high": {"priority": 0}, "low": {"priority": 0}})
    low = {"priority": 1, "rate": round(args.low_rate_frac * capacity, 3), "burst": args.max_batch_size}
    return ServerConfig(**base, tiers={"high": {"priority": 0, "protected": True}, "low": low},
                        max_queue=args.max_queue, overload="degrade" if setup == "degrade" else "reject",
                        reserved_rows=args.reserved_rows if setup == "reserve" else 0,
                        degrade_queue=args.degrade_queue if setup == "degrade" else None,
                        degrade_max_tokens=args.degrade_max_tokens)


def load_for(args, **over) -> LoadConfig:
    fields = dict(prompt_tokens=args.prompt_tokens, max_tokens=args.max_tokens, seed=args.seed,
                  duration_s=args.duration, drain_s=60.0, timeout_s=120.0)
    return LoadConfig(**{**fields, **over})


def execute(store: str, cfg: RunConfig) -> tuple[str, dict]:
    """Runs one configuration; returns the run id and the load generator's `done` line."""
    from servelab.runner import execute_run

    done: dict = {}
    run_id = execute_run(cfg, store, on_progress=lambda m: done.update(m.get("done") or {}))
    return run_id, done


def measure_capacity(store: str, args) -> float:
    from servelab.results import run_summary

    load = load_for(args, mode="closed", users=2 * args.max_batch_size)
    server = ServerConfig(model=args.model, batching="continuous", max_batch_size=args.max_batch_size)
    run_id, _ = execute(store, RunConfig(load=load, server=server))
    return run_summary(store, run_id)["req_s"]


def outcome(row) -> tuple[str, str | None]:
    """(outcome, tier) of one stored request."""
    server = row["server"] if isinstance(row["server"], dict) else None
    if row["status"] == "ok":
        return ("degraded" if server.get("degraded") else "full"), server.get("tier")
    try:
        tier = json.loads(row["error"])["error"].get("tier")
    except (TypeError, ValueError, KeyError, AttributeError):
        tier = None
    code = row["http_status"]  # NA when no response came (timeout, connection error, cancelled)
    if not pd.isna(code) and int(code) in (429, 503):
        return str(int(code)), tier
    return "other", tier


def tier_figures(rows, args) -> dict[str, dict]:
    """Per tier: outcome counts, latency percentiles of served requests, SLO attainment."""
    figures: dict[str, dict] = {}
    for _, row in rows.iterrows():
        kind, tier = outcome(row)
        f = figures.setdefault(tier or "?", {**dict.fromkeys(OUTCOMES, 0), "sent": 0, "ttft": [], "e2e": []})
        f["sent"] += 1
        f[kind] += 1
        if kind in ("full", "degraded"):
            f["ttft"].append((row["t_first_ns"] - row["t_send_ns"]) / 1e6)
            f["e2e"].append((row["t_last_ns"] - row["t_send_ns"]) / 1e6)
    for f in figures.values():
        ttft, e2e = np.array(f.pop("ttft")), np.array(f.pop("e2e"))
        met = int(np.sum((ttft <= args.ttft_slo_ms) & (e2e <= args.e2e_slo_ms))) if len(ttft) else 0
        f.update(ttft_p99=np.percentile(ttft, 99) if len(ttft) else None,
                 e2e_p99=np.percentile(e2e, 99) if len(e2e) else None,
                 slo=met / f["sent"])
    return figures


def run_setup(store: str, setup: str, args, capacity: float, rate: float) -> tuple[dict, dict]:
    from store import queries

    load = load_for(args, mode="open", rate=rate, tier_mix={"high": args.high_share, "low": 1 - args.high_share})
    run_id, done = execute(store, RunConfig(load=load, server=server_for(setup, args, capacity)))
    rows = queries.get_requests(store, run_id)
    figures = tier_figures(rows, args)
    counted = sum(f[k] for f in figures.values() for k in OUTCOMES)
    other = rows[(rows["status"] != "ok") & ~rows["http_status"].isin([429, 503])]
    accounting = {"sent": done.get("sent"), "records": len(rows), "outcomes": counted,
                  "other": dict(other["status"].value_counts())}
    return figures, accounting


def fmt(v, spec: str) -> str:
    return format("-" if v is None else format(v, spec[1:]), spec[:3])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--factor", type=float, default=2.0, help="offered load / measured capacity")
    p.add_argument("--capacity", type=float, default=None, help="req/s; skip measuring it")
    p.add_argument("--high-share", type=float, default=0.2)
    p.add_argument("--low-rate-frac", type=float, default=1.0, help="low tier bucket: x capacity req/s")
    p.add_argument("--max-queue", type=int, default=8)
    p.add_argument("--degrade-queue", type=int, default=2)
    p.add_argument("--reserved-rows", type=int, default=2, help="reserve: batch rows left to the high tier")
    p.add_argument("--degrade-max-tokens", type=int, default=8)
    p.add_argument("--prompt-tokens", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--ttft-slo-ms", type=float, default=500.0)
    p.add_argument("--e2e-slo-ms", type=float, default=2000.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    # Keys made up for this run, given to the server and the load generator through the
    # environment only (never on a command line, in a spec file or in the store).
    os.environ[API_KEYS_ENV] = json.dumps({f"sk-{secrets.token_hex(8)}": "high",
                                           f"sk-{secrets.token_hex(8)}": "low"})
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "overload.duckdb")
        capacity = args.capacity or measure_capacity(store, args)
        rate = args.factor * capacity
        print(f"overload: model={args.model} continuous batching max_batch_size={args.max_batch_size} "
              f"prompt={args.prompt_tokens} max_tokens={args.max_tokens}; capacity {capacity:.2f} req/s, "
              f"offered {rate:.2f} req/s ({args.factor:g}x) for {args.duration:g} s, high share "
              f"{args.high_share:g}; low tier: {args.low_rate_frac:g}x capacity bucket, max_queue "
              f"{args.max_queue}, reserve {args.reserved_rows} rows, degrade from {args.degrade_queue} to "
              f"{args.degrade_max_tokens} tokens; "
              f"SLO ttft<={args.ttft_slo_ms:g}ms e2e<={args.e2e_slo_ms:g}ms", flush=True)
        print(f"{'setup':<9}{'tier':<6}{'sent':>6}{'full':>6}{'degr':>6}{'429':>6}{'503':>6}{'other':>6}"
              f"{'ttft p99':>10}{'e2e p99':>10}{'SLO met':>9}   accounting")
        for setup in ("none", "reject", "reserve", "degrade"):
            figures, acc = run_setup(store, setup, args, capacity, rate)
            ok = acc["sent"] == acc["records"] == acc["outcomes"]
            note = f"sent {acc['sent']} = stored {acc['records']} = outcomes {acc['outcomes']}: " + \
                   ("nothing dropped" if ok else "MISMATCH")
            if acc["other"]:
                note += f"; other: {', '.join(f'{k} {v}' for k, v in acc['other'].items())}"
            for i, tier in enumerate(sorted(figures)):
                f = figures[tier]
                print(f"{setup if i == 0 else '':<9}{tier:<6}{f['sent']:>6}{f['full']:>6}{f['degraded']:>6}"
                      f"{f['429']:>6}{f['503']:>6}{f['other']:>6}{fmt(f['ttft_p99'], '>10.0f')}"
                      f"{fmt(f['e2e_p99'], '>10.0f')}{f['slo']:>9.1%}   {note if i == 0 else ''}", flush=True)


if __name__ == "__main__":
    main()
