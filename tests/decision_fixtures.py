"""A store holding a sweep of three priced setups, for the Frontier, Levers, Recommend and
Hardware and prices pages (AppTest and the browser test).

Rows go in through store/sweeps.py as the sweep runner writes them (create_sweep ->
add_point -> finish_sweep), like tests/test_dashboard_sweeps.py. Prices come the ways a
user gives them: `price_per_hour` on two setups of the spec, a catalog SKU on the third
(`hardware: aws-g5.xlarge`, on-demand only in the catalog, so it has no spot price).
"""

from __future__ import annotations

from pathlib import Path

from store import sweeps as store_sweeps
from store.schema import connect_write

SWEEP_ID = "s20261203-120000-dash"
SLO = "ttft_p99<=500ms"
SETUPS = {  # name: (spec entry, capacity scale in req/s, latency factor)
    "none": ({"server": {"batching": "none"}, "price_per_hour": 0.5}, 3.0, 1.0),
    "continuous": ({"server": {"batching": "continuous"}, "price_per_hour": 0.8}, 12.0, 0.8),
    "int8": ({"server": {"batching": "continuous", "precision": "int8"}, "hardware": "aws-g5.xlarge"}, 14.0, 1.0),
}
SPEC = {"name": "levers-dash", "slo": SLO, "duration_s": 10, "repeats": 2,
        "search": {"kind": "capacity", "low": 1, "high": 32, "rel_tol": 0.1},
        "setups": {name: entry for name, (entry, _, _) in SETUPS.items()}}
# (load factor of the scale, TTFT p99 ms) per probe: met, missed, met just below, missed just above
PROBES = [(0.8, 200.0), (1.2, 900.0), (1.0, 480.0), (1.1, 560.0)]


def point(setup: str, repeat: int, probe: int, rate: float, p99: float, run_id: str | None = None) -> dict:
    def lat(v):
        return {"p50": v / 3, "p90": v * 0.7, "p95": v * 0.85, "p99": v, "p999": v * 1.2, "mean": v / 2.5}

    return {"setup": setup, "repeat": repeat, "probe": probe, "rate": rate, "users": None, "status": "completed",
            "run_id": run_id or f"r-{setup}-{repeat}-{probe}", "slo_met": p99 <= 500, "margin": p99 / 500,
            "slo_attainment": 1.0 if p99 <= 500 else 0.7, "offered_rate": rate, "req_s": rate,
            "output_tok_s": rate * 32, "output_tokens_per_req": 32.0, "prompt_tokens_per_req": 128.0,
            "ttft_ms": lat(p99), "tpot_ms": lat(p99 / 20), "itl_ms": lat(p99 / 25), "e2e_ms": lat(p99 * 2)}


def add_sweep(path: str | Path, first_run_id: str | None = None) -> str:
    """Writes the sweep into the store at `path` (made if missing); `first_run_id` names a real
    run of that store for the first point, so its link opens a Run page with data."""
    if not Path(path).exists():
        connect_write(path).close()
    store_sweeps.create_sweep(path, SWEEP_ID, SPEC["name"], SPEC, "levers-dash.yaml", SLO, "test")
    for name, (_, scale, factor) in SETUPS.items():
        for r in range(2):
            for k, (f, p99) in enumerate(PROBES):
                rate = scale * (f + 0.02 * r * (k == 2))
                run_id = first_run_id if (first_run_id and name == "none" and r == 0 and k == 0) else None
                # repeat-to-repeat noise, opposite for int8: its TTFT equals none's on average,
                # so the Levers page has a "no measurable change" to show
                noise = 1 + (0.03 if (r == 0) == (name == "int8") else -0.03)
                p = point(name, r, k, rate, p99 * factor * noise if p99 <= 500 else p99, run_id)
                store_sweeps.add_point(path, {**p, "sweep_id": SWEEP_ID, "point": p})
    store_sweeps.finish_sweep(path, SWEEP_ID, "completed", None)
    return SWEEP_ID
