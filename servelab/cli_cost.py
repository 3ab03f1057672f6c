"""`servelab recommend`, `servelab frontier` and `servelab fidelity`: dollars over a sweep's results.

Thin commands over analysis/cost.py, frontier.py, attribution.py, recommend.py and
servelab/prices.py; tables in servelab/render_cost.py. A sweep's result comes from the store
(`servelab.sweeps.sweep_summary`) or from a saved `servelab sweep --json` object
(`--from-json FILE`).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from servelab.cli_common import DEFAULT_STORE, JsonOpt, StoreOpt, app, stderr_console, stdout_console

FromJsonOpt = Annotated[str | None, typer.Option("--from-json", help="a saved sweep result (servelab sweep --json)")]
PricingOpt = Annotated[str, typer.Option(help="on-demand, spot, reserved-1y or reserved-3y")]
PricesOpt = Annotated[str | None, typer.Option("--prices", help="TOML file of price overrides "
                                               "(shape: data/hardware/README.md)")]
PriceFlagOpt = Annotated[list[str] | None, typer.Option("--price-per-hour", help="NAME=USD for a setup or a SKU; "
                                                        "repeat for several")]
SpotOpt = Annotated[float, typer.Option(help="spot: fraction of hours lost to interruptions (docs/metrics.md)")]


def load_sweep(sweep_id: str | None, from_json: str | None, store: str) -> dict:
    """The sweep result object, from a file or from the store; one error line if neither works."""
    from servelab.errors import UserError

    if from_json:
        try:
            with open(from_json, encoding="utf-8") as f:
                data = json.load(f)
        except OSError:
            raise UserError(f"cannot read {from_json}") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{from_json} is not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("setups"), list):
            raise UserError(f"{from_json} is not a sweep result: expected an object with \"setups\"")
        return data
    if not sweep_id:
        raise UserError("name a sweep (SWEEP_ID) or a saved result (--from-json FILE)")
    from servelab.sweeps import sweep_summary

    return sweep_summary(store, sweep_id)


def _fidelity_file(path: str | None) -> dict:
    from servelab.errors import UserError

    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("setups") or {}
    except (OSError, json.JSONDecodeError, AttributeError):
        raise UserError(f"{path} is not a fidelity report (servelab fidelity --json)") from None


@app.command()
def recommend(
    traffic: Annotated[float, typer.Option(help="requests/s to serve")],
    sweep_id: Annotated[str | None, typer.Argument(help="the sweep to plan from")] = None,
    from_json: FromJsonOpt = None,
    slo: Annotated[str | None, typer.Option(help="judge the sweep's points against this SLO instead of its own, "
                                            "e.g. ttft_p99<=300ms")] = None,
    pricing: PricingOpt = "on-demand",
    prices: PricesOpt = None,
    price_per_hour: PriceFlagOpt = None,
    headroom: Annotated[float, typer.Option(help="spare capacity kept, as a fraction of the traffic")] = 0.1,
    spot_overhead: SpotOpt = 0.05,
    min_fidelity: Annotated[float | None, typer.Option(help="exclude setups whose greedy answers match the "
                                                       "baseline's on fewer than this fraction of prompts")] = None,
    fidelity: Annotated[str | None, typer.Option(help="fidelity report (servelab fidelity --json)")] = None,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """The cheapest setup and replica count that serves TRAFFIC req/s within the SLO.

    Example: servelab recommend s20261203-211500-ab12 --traffic 20 --pricing spot

    From a saved result: servelab recommend --from-json sweep.json --traffic 5 --price-per-hour local-cpu=0.10
    """
    from servelab.decisions import judged, recommend_report
    from servelab.render_cost import print_recommendation

    sweep = judged(load_sweep(sweep_id, from_json, store), slo)
    rec, setup_prices = recommend_report(sweep, traffic, pricing, prices, price_per_hour, headroom, spot_overhead,
                                         _fidelity_file(fidelity), min_fidelity)
    if as_json:
        print(json.dumps(rec))
    else:
        print_recommendation(stdout_console(), rec, setup_prices)
    if rec["setup"] is None:
        raise typer.Exit(1)


@app.command()
def frontier(
    sweep_id: Annotated[str | None, typer.Argument(help="the sweep to show")] = None,
    from_json: FromJsonOpt = None,
    latency: Annotated[str, typer.Option(help="latency axis, METRIC_STAT: ttft|tpot|itl|e2e, p50..p999|mean")]
    = "ttft_p99",
    baseline: Annotated[str | None, typer.Option(help="setup the others are compared with (default: the "
                                                  "first)")] = None,
    slo_only: Annotated[bool, typer.Option("--slo-only", help="leave out loads that missed the SLO")] = False,
    pricing: PricingOpt = "on-demand",
    prices: PricesOpt = None,
    price_per_hour: PriceFlagOpt = None,
    spot_overhead: SpotOpt = 0.05,
    usd_per_kwh: Annotated[float | None, typer.Option(help="electricity price, for energy $ where power was "
                                                      "measured")] = None,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """The latency/cost frontier of a sweep, and what each setup bought against a baseline.

    Example: servelab frontier s20261203-211500-ab12 --latency tpot_p99 --baseline none

    From a saved result: servelab frontier --from-json sweep.json --price-per-hour local-cpu=0.10
    """
    from servelab.decisions import frontier_report
    from servelab.render_cost import print_frontier

    report = frontier_report(load_sweep(sweep_id, from_json, store), pricing, prices, price_per_hour, latency,
                             baseline, slo_only, spot_overhead, usd_per_kwh)
    if as_json:
        print(json.dumps(report))
    else:
        print_frontier(stdout_console(), report["frontier"], report["attribution"], report["costs"],
                       report["prices"])


@app.command()
def fidelity(
    baseline: Annotated[str, typer.Option(help="URL of the baseline setup's server")],
    candidate: Annotated[list[str], typer.Option(help="NAME=URL of a setup to compare; repeat for several")],
    prompts: Annotated[str | None, typer.Option(help="JSONL prompt set (default: data/prompts/fidelity.jsonl)")]
    = None,
    max_tokens: Annotated[int, typer.Option(help="greedy tokens per answer")] = 32,
    as_json: JsonOpt = False,
) -> None:
    """Compare setups' greedy answers to a fixed prompt set with the baseline's.

    Example: servelab fidelity --baseline http://127.0.0.1:8000 --candidate int8=http://127.0.0.1:8001 --json
    """
    from servelab.fidelity import PROMPTS, load_prompts, probe, report
    from servelab.render_cost import print_fidelity
    from servelab.errors import UserError

    pairs = [c.partition("=") for c in candidate]
    if any(not name or not sep or not url for name, sep, url in pairs):
        raise UserError("bad --candidate: expected NAME=URL, e.g. int8=http://127.0.0.1:8001")
    rows = load_prompts(prompts or PROMPTS)
    err = stderr_console()
    if not as_json:
        err.print(f"{len(rows)} prompts, {max_tokens} greedy tokens each, to {1 + len(pairs)} servers")
    base = probe(baseline, rows, max_tokens)
    out = {"baseline": base["url"], "prompts": len(rows), "max_tokens": max_tokens,
           "setups": {name: report(base, probe(url, rows, max_tokens)) for name, _, url in pairs}}
    if as_json:
        print(json.dumps(out))
    else:
        print_fidelity(stdout_console(), out)
