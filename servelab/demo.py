"""`servelab demo`: a quick sweep of two batching levers of the built-in server, then what
they buy: capacity at the SLO with intervals, the latency/cost frontier, the attribution
table and a recommendation for a stated traffic.

Everything is an ordinary sweep (servelab/sweep_run.py) read back through the same
functions as `servelab sweep-summary`, `servelab frontier` and `servelab recommend`, so
the demo's numbers are the commands' numbers. The demo prices the local CPU machine at
DEMO_PRICE $/hour, said wherever a $ figure appears (prices change: set yours with
`servelab recommend SWEEP --price-per-hour local-cpu=USD`).
"""

from __future__ import annotations

from rich.console import Console

from servelab.progress import SweepProgress
from servelab.sweep_spec import SweepSpec

DEMO_PRICE = 0.10  # $/hour assumed for this machine (the catalog's local-cpu has no price of its own)
DEMO_TRAFFIC = 40.0  # req/s the recommendation plans for


def demo_spec(duration_s: float) -> SweepSpec:
    """Batching none vs continuous on the tiny model: 3 repeats of a coarse capacity search
    (3, not 2: with 2 repeats a 95% t interval is mean +- 12.7 sd / sqrt 2, nearly useless)."""
    setup = {"hardware": "local-cpu", "price_per_hour": DEMO_PRICE}
    return SweepSpec.model_validate({
        "name": "demo", "slo": "ttft_p99<=500ms,tpot_p99<=50ms", "duration_s": duration_s, "drain_s": 3,
        "repeats": 3, "search": {"kind": "capacity", "low": 2, "high": 96, "rel_tol": 0.2, "max_probes": 5},
        "workload": {"max_tokens": 32, "prompt_tokens": 64},
        "setups": {"none": {"server": {"model": "tiny", "batching": "none"}, **setup},
                   "continuous": {"server": {"model": "tiny", "batching": "continuous", "max_batch_size": 16},
                                  **setup}},
    })


def run_demo(store: str, duration_s: float, out: Console, err: Console) -> dict:
    """Runs the demo sweep and prints capacity, frontier, attribution and the recommendation."""
    from servelab.decisions import frontier_report, recommend_report
    from servelab.render_cost import print_frontier, print_recommendation
    from servelab.render_sweep import capacity_table
    from servelab.sweep_run import SweepRunner
    from servelab.sweeps import sweep_summary

    spec = demo_spec(duration_s)
    err.print(f"demo: capacity of the built-in tiny model at the SLO {spec.slo}, batching none vs continuous "
              f"({spec.repeats} repeats of {duration_s:g} s points; about 4 minutes)")
    with SweepProgress(err, spec.name, spec.duration_s) as progress:
        runner = SweepRunner(spec, "servelab demo", store, on_point=progress.point, on_progress=progress.update)
        sweep_id = runner.run()
    result = sweep_summary(store, sweep_id)
    out.print(capacity_table(result))
    report = frontier_report(result, baseline="none")
    print_frontier(out, report["frontier"], report["attribution"], report["costs"], report["prices"])
    rec, prices = recommend_report(result, DEMO_TRAFFIC)
    out.print(f"\nrecommendation for {DEMO_TRAFFIC:g} req/s (this machine priced at ${DEMO_PRICE:.2f}/hour, "
              "an assumption of the demo):")
    print_recommendation(out, rec, prices)
    out.print(f"\nthe sweep: servelab sweep-summary {sweep_id} --points --store {store}")
    return {"sweep": result, "frontier": report, "recommendation": rec}
