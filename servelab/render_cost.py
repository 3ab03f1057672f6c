"""Terminal rendering of the recommendation, the frontier, the attribution and fidelity (rich).

Every $ figure is shown with the date and source of the price it came from: beside it in
the recommendation, and as a "prices" list under each table of the frontier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from servelab.prices import describe


def _usd(v: float | None) -> str:
    if v is None:
        return "-"
    return f"${v:,.2f}" if abs(v) >= 100 else f"${v:.4g}"


def _num(v: float | None, fmt: str = "{:.3g}") -> str:
    return "-" if v is None else fmt.format(v)


def _ci(iv: Mapping[str, Any] | None, fmt=_num, suffix: str = "") -> str:
    """`3.9x [3.5, 4.2]` style: value, then the interval when there is one."""
    if not iv or iv.get("value") is None:
        return "-"
    text = f"{fmt(iv['value'])}{suffix}"
    if iv.get("ci_low") is not None and iv.get("ci_high") is not None:
        text += f" [{fmt(iv['ci_low'])}, {fmt(iv['ci_high'])}]"
    return text


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:+.0f}%"


def _prices_lines(out: Console, prices: Mapping[str, Mapping[str, Any] | None]) -> None:
    out.print("prices:")
    for name, p in prices.items():
        usd = "" if not p or p.get("usd_per_hour") is None else f"{_usd(p['usd_per_hour'])}/h {p.get('pricing')}, "
        out.print(f"  {name}: {usd}{describe(p)}", soft_wrap=True)


def print_recommendation(out: Console, rec: Mapping[str, Any], prices: Mapping[str, Any]) -> None:
    src = f"(prices as of {rec.get('prices_as_of')}, source: {rec.get('prices_source')})"
    head = f"for {rec['traffic_req_s']:g} req/s within {rec.get('slo') or 'the SLO'} (headroom {rec['headroom']:.0%})"
    if rec["setup"] is None:
        out.print(f"no setup serves {head}")
    else:
        cap = rec["capacity_req_s"] or {}
        out.print(f"recommended {head}: [bold]{rec['setup']}[/bold] x {rec['replicas']}")
        out.print(f"  capacity per copy {_ci(cap)} req/s; planned with {rec['planning_capacity_req_s']:.3g} req/s "
                  f"({rec['capacity_basis']})")
        out.print(f"  {_usd(rec['usd_per_hour'])}/hour, {_usd(rec['usd_per_month'])}/month (730 h), "
                  f"{_usd(rec['usd_per_1m_output_tokens'])} per 1M output tokens at this traffic, "
                  f"{rec.get('pricing')} {src}", soft_wrap=True)
        if rec.get("changes_answers"):
            f = rec["fidelity"]
            out.print(f"  note: this setup changes answers: greedy outputs match the baseline on "
                      f"{f['exact_match_rate']:.0%} of prompts (token agreement {f['token_agreement']:.0%})")
    ru = rec.get("runner_up")
    if ru:
        out.print(f"runner-up: {ru['setup']} x {ru['replicas']}: {_usd(ru['usd_per_hour'])}/hour, "
                  f"{_usd(ru['usd_per_month'])}/month (prices as of {ru['prices_as_of']}, source: "
                  f"{ru['prices_source']})", soft_wrap=True)
    t = Table(title="why the others lost", box=box.SIMPLE_HEAD)
    t.add_column("setup", no_wrap=True)
    t.add_column("reason")
    t.add_column("prices", overflow="fold")
    for r in rec["rejected"]:
        when = "" if "prices_as_of" not in r else f"as of {r['prices_as_of']}, source: {r['prices_source']}"
        t.add_row(str(r["setup"]), r["reason"], when)
    if rec["rejected"]:
        out.print(t)


def frontier_table(front: Mapping[str, Any]) -> Table:
    t = Table(title=f"latency/cost frontier ({front['latency']} vs $ per 1M output tokens)", box=box.SIMPLE_HEAD)
    t.add_column("setup", no_wrap=True)
    for col in ("load", "req/s", "out tok/s", f"{front['latency']} ms", "$/1M out", "SLO", "frontier"):
        t.add_column(col, justify="left" if col == "frontier" else "right")
    rows = sorted(front["points"], key=lambda r: (r["usd_per_1m_output_tokens"] is None,
                                                 r["usd_per_1m_output_tokens"] or 0.0))
    for r in rows:
        by = r.get("dominated_by")
        mark = "yes" if r["pareto"] else "-" if r["pareto"] is None else f"no: {by['setup']}@{by['load']:.3g}"
        load = f"{r['load']:.3g}" + (" users" if r["load_kind"] == "users" else "/s")
        t.add_row(str(r["setup"]), load, _num(r["req_s"]), _num(r["output_tok_s"]), _num(r["latency_ms"]),
                  _usd(r["usd_per_1m_output_tokens"]), "met" if r["slo_met"] else "missed", mark)
    return t


def attribution_table(att: Mapping[str, Any]) -> Table:
    t = Table(title=f"what each setup bought against {att['baseline']} (95% intervals)", box=box.SIMPLE_HEAD)
    t.add_column("setup", no_wrap=True)
    for col in ("capacity", "$/1M out", "TTFT p99", "TPOT p99", "latency at"):
        t.add_column(col, justify="right")

    def cell(iv, verdict, fmt, suffix=""):
        text = _ci(iv, fmt, suffix)
        return f"{text}\n{verdict}" if verdict == "no measurable change" else text

    for r in att["rows"]:
        at = r["latency_at"]
        t.add_row(str(r["setup"]), cell(r["capacity_ratio"], r["capacity_verdict"], lambda v: f"{v:.2f}", "x"),
                  cell(r["usd_per_1m_output_tokens_pct"], r["usd_verdict"], _pct),
                  cell(r["ttft_p99_pct"], r["ttft_verdict"], _pct), cell(r["tpot_p99_pct"], r["tpot_verdict"], _pct),
                  at if isinstance(at, str) else f"{at:.3g} req/s")
    return t


def cost_table(costs: list[Mapping[str, Any]]) -> Table:
    t = Table(title="cost at capacity within the SLO, one copy (95% intervals)", box=box.SIMPLE_HEAD)
    t.add_column("setup", no_wrap=True)
    for col in ("$/hour", "$/month", "$/1M out", "$/1M total", "$/1k req", "energy $/1M out"):
        t.add_column(col, justify="right")
    for c in costs:
        energy = (c.get("energy") or {}).get("usd_per_1m_output_tokens")
        t.add_row(str(c["setup"]), _usd(c["usd_per_hour"]), _usd(c["usd_per_month"]),
                  _ci(c["usd_per_1m_output_tokens"], _usd), _ci(c["usd_per_1m_total_tokens"], _usd),
                  _ci(c["usd_per_1k_requests"], _usd), _usd(energy))
    return t


def print_frontier(out: Console, front: Mapping[str, Any], att: Mapping[str, Any] | None,
                   costs: list[Mapping[str, Any]], prices: Mapping[str, Any]) -> None:
    if costs:
        out.print(cost_table(costs))
    out.print(frontier_table(front))
    if att and att["rows"]:
        out.print(attribution_table(att))
    _prices_lines(out, prices)


def print_fidelity(out: Console, result: Mapping[str, Any]) -> None:
    t = Table(title=f"greedy answers vs the baseline ({result['prompts']} prompts, {result['max_tokens']} tokens)",
              box=box.SIMPLE_HEAD)
    for col in ("setup", "exact match", "token agreement", "first divergence", "unit"):
        t.add_column(col, justify="left" if col in ("setup", "unit") else "right")
    for name, r in result["setups"].items():
        t.add_row(name, f"{r['exact_match_rate']:.0%}", f"{r['token_agreement']:.0%}",
                  f"{r['mean_first_divergence']:.1f}", r["token_unit"])
    out.print(t)
