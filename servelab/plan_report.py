"""The capacity plan as documents: Markdown, and a self-contained offline HTML page.

Both are made from one list of sections (a heading, lines of text, a table) built from the
plan object, so they say the same thing. The HTML inlines plotly.js once
(`include_plotlyjs=True`) and loads nothing: no CDN, no web font, no MathJax; the charts come
from dashboard/plan_views.py, as on the dashboard's Capacity plan page.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

Table = list[list[str]]  # rows, the first is the header
Section = tuple[str, list[str | Table]]  # a heading, then lines of text and tables


def _usd(v: float | None) -> str:
    return "n/a" if v is None else f"${v:,.2f}"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"


def _months(v: float | None) -> str:
    return "never (flat or falling traffic)" if v is None else f"{v:.1f} months"


def _summary(p: dict[str, Any]) -> Section:
    cap = p.get("capacity_req_s") or {}
    return ("Summary", [
        f"Traffic: {p['traffic']['description']}; peak {p['peak_req_s']:.4g} req/s, mean {p['mean_req_s']:.4g} req/s.",
        f"Setup: {p['setup']} of sweep {p['sweep_id']} ({p['choice']}); SLO {p['slo']}.",
        f"Planning capacity: {p['planning_capacity_req_s']:.4g} req/s per replica ({p['capacity_basis']}; "
        f"capacity {_num(cap.get('value'))}, 95% interval {_num(cap.get('ci_low'))}..{_num(cap.get('ci_high'))} "
        "req/s).",
        f"Headroom {p['headroom']:g}: **{p['replicas_peak']} replica(s) at the peak**, utilisation "
        f"{_pct(p['utilisation_peak'])} of planned capacity at the peak, {_pct(p['utilisation_mean_fixed'])} "
        "on average for a fixed fleet.",
    ])


def _costs(p: dict[str, Any]) -> Section:
    usd = p["usd_per_month"]
    mix = usd["reserved_mix_detail"]
    rows = [["fleet", "USD per month", "how"],
            ["fixed", _usd(usd["fixed"]), f"{p['replicas_peak']} replica(s) all month, {p['pricing']}"],
            ["autoscaled", _usd(usd["autoscaled"]), f"replicas per interval, each started "
             f"{p['scale_up_delay_s']:g} s before it is needed, {p['pricing']}"],
            ["reserved mix", _usd(usd["reserved_mix"]),
             mix.get("missing") or f"{mix['base']} replica(s) {mix['reserved_pricing']} + peaks "
             f"{mix['flexible_pricing']} (mean {mix['mean_flexible_replicas']:.2f})"]]
    lines = [f"Prices as of {p.get('prices_as_of') or 'n/a'}, source: {p.get('prices_source') or 'n/a'}."]
    if (p["usd_per_month"]["by_pricing"].get(p["pricing"]) or {}).get("user_set"):
        lines.append("The price is user-set: the same under every pricing, so the pricings differ in nothing.")
    if p.get("price_missing"):
        lines.append(f"No {p['pricing']} price: {p['price_missing']}")
    by = [["pricing", "fixed", "autoscaled", "USD/h per replica"]] + [
        [name, _usd(v["fixed"]), _usd(v["autoscaled"]),
         "n/a" if v["usd_per_hour_per_replica"] is None else f"{v['usd_per_hour_per_replica']:.4g}"]
        for name, v in usd["by_pricing"].items()]
    return ("Monthly cost", [*lines, rows, "By pricing:", by])


def _hours(p: dict[str, Any]) -> Section:
    hours = p["replicas_by_hour"]
    rows = [["hour", "replicas (most in the hour)"]] + [[str(h), str(n)] for h, n in enumerate(hours)]
    per = "per hour" if p["bucket_s"] >= 3600 else f"per {p['bucket_s']:g} s interval (the most per hour below)"
    return ("Replicas by hour", [f"Planned {per}: replicas = ceil(rate x (1 + headroom) / planning capacity).",
                                 rows])


def _growth(p: dict[str, Any]) -> Section:
    g = p.get("growth")
    if not g:
        return ("Growth", ["No --growth given."])
    rows = [["months", "peak req/s", "replicas"]] + [[f"{s['months']:g}", f"{s['peak_req_s']:.4g}", str(s["replicas"])]
                                                     for s in g["by_period"]]
    return ("Growth", [f"At {g['growth']['text']}, the fleet of {p['replicas_peak']} replica(s) uses up its headroom "
                       f"in {_months(g['months_to_headroom_used'])} and runs out of capacity (SLO at risk) in "
                       f"{_months(g['months_to_capacity'])}.", rows])


def _mix(p: dict[str, Any]) -> Section:
    m = p["length_mix"]
    rows = [["tokens per request", "traffic", "measured (sweep)", "change"]] + [
        [k, "n/a" if m[k]["traffic"] is None else f"{m[k]['traffic']:.0f}",
         "n/a" if m[k]["measured"] is None else f"{m[k]['measured']:.0f}",
         "n/a" if m[k]["change"] is None else f"{100 * m[k]['change']:+.0f}%"] for k in ("prompt", "output")]
    if m["prompt"]["traffic"] is None:
        return ("Length mix", [*m["notes"], rows])
    head = ("The traffic's length mix differs from the one the capacity was measured with:"
            if m["differs"] else "The traffic's length mix matches the measured one (within 10%).")
    return ("Length mix", [head, *m["notes"], rows])


def _setups(p: dict[str, Any]) -> Section:
    rows = [["setup", "planning req/s", "replicas at peak", "fixed", "autoscaled", "reserved mix"]]
    for s in p["setups"]:
        if s.get("reason"):
            rows.append([s["setup"], "-", "-", s["reason"], "", ""])
            continue
        u = s["usd_per_month"]
        rows.append([s["setup"], f"{s['planning_capacity_req_s']:.4g}", str(s["replicas_peak"]), _usd(u["fixed"]),
                     _usd(u["autoscaled"]), _usd(u["reserved_mix"])])
    return ("Every setup of the sweep", [rows])


def _validation(p: dict[str, Any]) -> Section:
    v = p.get("validation")
    if not v:
        return ("Validation", ["Not run (servelab plan ... --validate)."])
    if v.get("status") != "run":
        return ("Validation", [v["reason"]])
    r = v["replayed"]
    lines = [f"Replayed {v['duration_s']:g} s of the peak ({r['arrivals']} arrivals, {r['offered_req_s']:.3g} req/s "
             f"offered) against the built-in server behind HAProxy. Verdict: **{v['verdict']}**."]
    if v.get("note"):
        lines.append(v["note"])
    rows = [["replicas", "SLO met", "SLO attainment", "req/s", "TTFT p99 ms", "TPOT p99 ms", "run"]]
    for run in (v["at_plan"], v.get("one_fewer")):
        if run:
            rows.append([str(run["replicas"]), str(run["slo_met"]), _pct(run["slo_attainment"]),
                         f"{run['req_s'] or 0:.3g}", f"{run['ttft_p99_ms'] or 0:.0f}", f"{run['tpot_p99_ms'] or 0:.0f}",
                         run["run_id"]])
    return ("Validation", [*lines, rows])


def sections(plan: dict[str, Any]) -> list[Section]:
    return [_summary(plan), _costs(plan), _hours(plan), _growth(plan), _mix(plan), _setups(plan), _validation(plan),
            ("Formulas", ["docs/metrics.md, \"Capacity plan\", has every formula."])]


def _md_table(rows: Table) -> str:
    cells = [[c.replace("|", "\\|") for c in r] for r in rows]
    return "\n".join(["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
                     + ["| " + " | ".join(r) + " |" for r in cells[1:]])


def markdown(plan: dict[str, Any]) -> str:
    out = [f"# Capacity plan: {plan['setup']} ({plan['sweep_id']})", ""]
    for head, items in sections(plan):
        out += [f"## {head}", ""]
        for item in items:
            out += [item if isinstance(item, str) else _md_table(item), ""]
    return "\n".join(out)


def _html_table(rows: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_item(line: str | Table) -> str:
    if not isinstance(line, str):
        return _html_table(line)
    parts = html.escape(line).split("**")  # **bold** is the only markup the lines use
    return "<p>" + "".join(f"<strong>{t}</strong>" if i % 2 else t for i, t in enumerate(parts)) + "</p>"


STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;"
         "text-align:left}th{background:#f4f4f4}")


def html_page(plan: dict[str, Any], figures: list) -> str:
    """One offline page: the sections, then the charts, plotly.js inlined once."""
    title = html.escape(f"Capacity plan: {plan['setup']} ({plan['sweep_id']})")
    body = [f"<h1>{title}</h1>"]
    for k, (head, items) in enumerate(sections(plan)):
        body.append(f"<h2>{html.escape(head)}</h2>" + "".join(map(_html_item, items)))
        if k == 0:
            body.append("<h2>Charts</h2>" + "".join(
                f.to_html(full_html=False, include_plotlyjs=(i == 0), include_mathjax=False,
                          config={"displaylogo": False}, div_id=f"plan-chart-{i}")
                for i, f in enumerate(figures)))
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title><style>{STYLE}</style>"
            f"</head><body>{''.join(body)}</body></html>")


def write(plan: dict[str, Any], out: str | Path) -> dict[str, str]:
    """plan.html, plan.md and plan.json in `out` (made if missing); their paths."""
    from dashboard.plan_views import figures

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"html": folder / "plan.html", "markdown": folder / "plan.md", "json": folder / "plan.json"}
    paths["html"].write_text(html_page(plan, figures(plan)), encoding="utf-8")
    paths["markdown"].write_text(markdown(plan), encoding="utf-8")
    paths["json"].write_text(json.dumps(plan, indent=1), encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}
