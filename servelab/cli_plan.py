"""`servelab plan`: how many replicas per hour, and the monthly bill, for a traffic profile.

A thin command over servelab/plan.py (the plan), servelab/plan_traffic.py (the traffic),
servelab/plan_validate.py (`--validate`) and servelab/plan_report.py (HTML, Markdown, JSON
in `--out DIR`).
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated

import typer

from servelab.cli_common import DEFAULT_STORE, JsonOpt, StoreOpt, app, stderr_console, stdout_console
from servelab.cli_cost import FromJsonOpt, PriceFlagOpt, PricesOpt, PricingOpt, SpotOpt, load_sweep


@app.command()
def plan(
    traffic: Annotated[str, typer.Option(help="a constant rate in req/s (100), a trace file (Azure CSV, Mooncake "
                                         "JSONL, BurstGPT CSV) or a CSV of hourly rates (one req/s per row)")],
    out: Annotated[str, typer.Option(help="folder for plan.html, plan.md and plan.json")],
    sweep_id: Annotated[str | None, typer.Argument(help="the sweep whose capacity to plan with")] = None,
    from_json: FromJsonOpt = None,
    setup: Annotated[str | None, typer.Option(help="plan this setup (default: what `servelab recommend` picks "
                                              "at the peak)")] = None,
    headroom: Annotated[float, typer.Option(help="spare capacity kept, as a fraction of the traffic")] = 0.1,
    growth: Annotated[str | None, typer.Option(help="traffic growth, e.g. 20%/quarter (month, quarter, year)")]
    = None,
    pricing: PricingOpt = "on-demand",
    prices: PricesOpt = None,
    price_per_hour: PriceFlagOpt = None,
    spot_overhead: SpotOpt = 0.05,
    traffic_scale: Annotated[float, typer.Option(help="multiply the traffic's rates (a trace is replayed this "
                                                 "much faster), e.g. 0.2 to fit a small machine")] = 1.0,
    scale_up_delay: Annotated[float, typer.Option(help="seconds from starting a replica to its serving "
                                                  "(autoscaled fleet)")] = 600.0,
    validate: Annotated[bool, typer.Option("--validate", help="replay the peak against the built-in server at "
                                           "the planned replica count and one fewer")] = False,
    validate_duration: Annotated[float, typer.Option(help="seconds of each validation run")] = 30.0,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Replicas per hour, peak fleet and monthly $ (fixed, autoscaled, reserved mix) for a traffic profile.

    Example: servelab plan s20261203-211500-ab12 --traffic 100 --growth 20%/quarter --out plan/

    A trace, validated: servelab plan SWEEP_ID --traffic data/traces/AzureLLMInferenceTrace_conv.csv
    --traffic-scale 0.25 --price-per-hour local-cpu=0.10 --validate --out plan/
    """
    from servelab import extras
    from servelab.errors import UserError
    from servelab.plan import make_plan, prices_by_setup
    from servelab.plan_report import write
    from servelab.plan_traffic import read_traffic

    if extras.missing("dashboard"):  # the report's charts are plotly figures (dashboard/plan_views.py)
        raise UserError("the plan's HTML report needs the dashboard extra: pip install 'servelab[dashboard]'")
    if validate_duration <= 0 or scale_up_delay < 0:
        raise UserError("--validate-duration must be above 0 and --scale-up-delay at least 0 seconds")
    sweep = load_sweep(sweep_id, from_json, store)
    flow = read_traffic(traffic, traffic_scale, sweep.get("workload"))
    result = make_plan(sweep, flow, setup, pricing, headroom, growth, scale_up_delay,
                       prices_by_setup(sweep, prices, price_per_hour), spot_overhead)
    if validate:
        result["validation"] = _validate(sweep, result, flow, store, validate_duration)
    result["files"] = write(result, out)
    if as_json:
        print(json.dumps(result))
    else:
        _print(result)


def _validate(sweep: dict, result: dict, flow, store: str, duration: float) -> dict:
    from servelab.plan_validate import validate
    from servelab.progress import RunProgress

    err = stderr_console()

    @contextlib.contextmanager
    def on_run(replicas: int, seconds: float):
        err.print(f"validation: {result['setup']} at {replicas} replica(s), {seconds:g} s of the peak")
        with RunProgress(err, seconds, f"{replicas} replica(s)") as bar:
            yield bar.update

    return validate(sweep, result, flow, store, duration, on_run)


def _print(p: dict) -> None:
    con = stdout_console()
    usd = p["usd_per_month"]

    def money(v):
        return "n/a" if v is None else f"${v:,.2f}"

    con.print(f"{p['setup']} ({p['choice']}): peak {p['peak_req_s']:.4g} req/s -> {p['replicas_peak']} replica(s) "
              f"at {p['planning_capacity_req_s']:.4g} req/s each, utilisation {100 * p['utilisation_peak']:.0f}% "
              "at the peak")
    con.print(f"per month ({p['pricing']}): fixed {money(usd['fixed'])}, autoscaled {money(usd['autoscaled'])}, "
              f"reserved mix {money(usd['reserved_mix'])}; prices as of {p.get('prices_as_of') or 'n/a'}")
    for note in p["length_mix"]["notes"]:
        con.print(f"length mix: {note}")
    if p.get("validation"):
        v = p["validation"]
        con.print(f"validation: {v['verdict']}" if v.get("status") == "run" else f"validation: {v['reason']}")
    con.print(f"report: {p['files']['html']} (also plan.md, plan.json)")
