"""Every dashboard page's cold load on a store of 1M requests.

The store is made once and cached (`--cache-dir`, default the system temp dir): synthetic
requests written as spool files exactly as the load generator writes them (SpoolWriter),
then ingested by the real path (store.ingest.ingest_step), in runs of `--per-run` requests:
one run per point of a three-setup sweep (tests/decision_fixtures.py's sweep, whose point run
ids become real runs here), then further runs until the total, so the sweep pages, the Run
page and the run-set pages all read the big store. `compare (none, continuous)` and
`gate (none, continuous)` compare two setups' 8 runs each (label sets), the default picks
two single runs.

A page's cold load: Streamlit's caches cleared, then the page script run once under AppTest
(the same script a browser gets, every read and figure built; no browser paint), timed
wall-clock. Each page is loaded `--repeat` times, cold each time; the median is printed.

    python bench/dashboard.py --requests 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import decision_fixtures as dfx  # noqa: E402
from loadtest.record import new_record  # noqa: E402
from loadtest.spool import SpoolWriter  # noqa: E402
from servelab.config import LoadConfig, RunConfig  # noqa: E402
from store import add_step, create_run, finish_run, ingest_step, spool_dir  # noqa: E402

S, MS = 1_000_000_000, 1_000_000
HOST = {"hostname": "bench", "platform": "Linux", "python": "3.11", "cpus": 2, "mem_bytes": 8 << 30}
CHUNKS = 8


def point_runs() -> list[tuple[str, str, float]]:
    """(run id, setup, rate) of every point of the fixture sweep, in its order."""
    out = []
    for name, (_, scale, _) in dfx.SETUPS.items():
        for r in range(2):
            for k, (f, _) in enumerate(dfx.PROBES):
                out.append((f"r-{name}-{r}-{k}", name, round(scale * (f + 0.02 * r * (k == 2)), 3)))
    return out


def write_run(path: Path, run_id: str, setup: str, rate: float, n: int, seed: int) -> None:
    """One open-loop run of `n` ok requests (TTFT 40-120 ms, CHUNKS chunks 8-14 ms apart),
    through create_run -> spool files -> ingest_step -> finish_run."""
    rng = random.Random(seed)
    duration = n / rate
    cfg = RunConfig(target="builtin", label=setup, load=LoadConfig(mode="open", rate=rate, duration_s=duration,
                                                                   warmup_s=0.0, max_tokens=CHUNKS))
    create_run(path, run_id, cfg.model_dump(mode="json"), "builtin", setup, HOST, "bench")
    add_step(path, run_id, 0, "open", None, rate, duration, 0.0)
    t0 = 1_000 * S
    end = t0 + round(duration * S) + S
    with SpoolWriter(spool_dir(path, run_id, 0), "w0") as spool:
        spool.write_meta({"event": "start", "t_ns": t0, "wall_ns": t0, "pid": 1})
        for i in range(n):
            ts = t0 + round(i * S / rate)
            t = ts + rng.randint(50, 900) * 1000 + rng.randint(40, 120) * MS
            chunks = [t]
            for _ in range(CHUNKS - 1):
                t += rng.randint(8_000, 14_000) * 1000
                chunks.append(t)
            rec = new_record(f"w0-{i:07d}", "w0", None, ts, CHUNKS, 128)
            rec.update({"t_send_ns": ts + 100_000, "wall_send_ns": ts, "t_first_ns": chunks[0],
                        "t_last_ns": chunks[-1] + MS, "chunk_ns": chunks, "status": "ok", "http_status": 200,
                        "prompt_tokens": 128, "output_tokens": CHUNKS, "output_tokens_client": CHUNKS})
            spool.write_request(rec)
        spool.write_meta({"event": "stop", "t_ns": end, "wall_ns": end, "sent": n, "completed": n})
        spool.write_meta({"event": "end", "t_ns": end})
    ingest_step(path, run_id, 0)
    finish_run(path, run_id, "completed")


def build(path: Path, total: int, per_run: int) -> None:
    """The sweep's 24 point runs, then more runs (unique labels) until `total` requests."""
    runs = point_runs()
    runs += [(f"r-bench-{k:04d}", f"bench run {k}", 50.0) for k in range(max(0, total // per_run - len(runs)))]
    t = time.monotonic()
    for k, (run_id, label, rate) in enumerate(runs):
        n = per_run + (total - per_run * len(runs) if k == len(runs) - 1 else 0)
        write_run(path, run_id, label, rate, n, seed=k)
        if (k + 1) % 10 == 0 or k + 1 == len(runs):
            print(f"  built {k + 1}/{len(runs)} runs, {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
    dfx.add_sweep(path)


def pages() -> dict[str, dict[str, str]]:
    """url path -> query parameters of each page registered in dashboard/app.py."""
    first = point_runs()[0][0]
    names = list(dfx.SETUPS)
    return {"runs": {}, "run": {"run": first}, "sweeps": {"sweep": dfx.SWEEP_ID},
            "frontier": {"sweep": dfx.SWEEP_ID}, "levers": {"sweep": dfx.SWEEP_ID},
            "recommend": {"sweep": dfx.SWEEP_ID}, "prices": {}, "compare": {}, "gate": {},
            "live": {}, "plan": {}, "_compare_labels": {"A": names[0], "B": names[1]},
            "_gate_labels": {"baseline": names[0], "candidate": names[1]}}


def cold_load(page: str, params: dict[str, str]) -> float:
    from streamlit.testing.v1 import AppTest

    from dashboard.data import clear_caches

    clear_caches()
    script = ROOT / "dashboard" / "app_pages" / f"{page.strip('_').split('_')[0]}.py"
    at = AppTest.from_file(str(script), default_timeout=600)
    for k, v in params.items():
        at.query_params[k] = v
    t = time.perf_counter()
    at.run()
    took = time.perf_counter() - t
    if at.exception:
        raise SystemExit(f"{page}: {at.exception[0].value}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--per-run", type=int, default=5000, help="requests per run (a 60 s point at ~80 req/s)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cache-dir", default=tempfile.gettempdir())
    ap.add_argument("--pages", default="", help="comma-separated url paths (default: all)")
    args = ap.parse_args()
    store = Path(args.cache_dir) / f"servelab-bench-dashboard-{args.requests}-{args.per_run}.duckdb"
    if not store.exists():
        print(f"building {store} ({args.requests:,} requests through store.ingest) ...", file=sys.stderr)
        tmp = store.with_suffix(".building.duckdb")
        for p in (tmp, Path(f"{tmp}.spool")):
            if p.is_file():
                p.unlink()
        build(tmp, args.requests, args.per_run)
        tmp.rename(store)
    os.environ["SERVELAB_STORE"] = str(store)
    wanted = [p for p in args.pages.split(",") if p] or list(pages())
    print(f"store {store}: {args.requests:,} requests in runs of {args.per_run:,}; cold load per page, "
          f"median of {args.repeat} (s):")
    for page, params in pages().items():
        script = ROOT / "dashboard" / "app_pages" / f"{page.strip('_').split('_')[0]}.py"
        if page not in wanted or not script.exists():
            continue
        times = [cold_load(page, params) for _ in range(args.repeat)]
        shown = page if not page.startswith("_") else f"{page.strip('_').split('_')[0]} ({', '.join(params.values())})"
        verdict = "ok" if statistics.median(times) < 2.0 else "OVER 2 s"
        print(f"  {shown:<34}{statistics.median(times):8.2f}   (min {min(times):.2f}, max {max(times):.2f})  {verdict}",
              flush=True)


if __name__ == "__main__":
    main()
