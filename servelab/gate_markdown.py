"""The gate's Markdown summary (a CI step summary) and its console table.

The verdict table comes first; then why, the load, the runs, and each metric's
per-repeat values in a collapsed block. Kept under GitHub's 1 MiB step-summary limit:
the per-repeat details are dropped first, then the run lists are cut.
"""

from __future__ import annotations

from servelab.gate_format import HEADER, ICONS, floors, num, row

LIMIT_BYTES = 1 << 20


def _table(result: dict) -> list[str]:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for m in result["metrics"]:
        cells = row(m)
        cells[1] = f"{ICONS.get(m['verdict'], '')} {m['verdict']}"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _why(result: dict) -> list[str]:
    lines = [f"- **{m['name']}**: {m['reason']} (floors {floors(m)})" for m in result["metrics"]]
    return lines + [f"- {r}" for r in result.get("reasons") or []]


def _runs(result: dict, cap: int | None) -> list[str]:
    out = []
    for name in ("baseline", "candidate"):
        side = result[name]
        ids = side["runs"] if cap is None else side["runs"][:cap]
        more = "" if len(ids) == len(side["runs"]) else f" and {len(side['runs']) - len(ids)} more"
        how = "measured now" if side["measured_now"] else "stored"
        out.append(f"- {name}: `{side['spec']}` ({how}), runs {', '.join(ids) or 'none'}{more}")
    return out


def _details(result: dict) -> list[str]:
    lines = ["<details><summary>Per-repeat values</summary>", "",
             "| metric | baseline | candidate |", "|---|---|---|"]
    for m in result["metrics"]:
        a = ", ".join(num(v) for v in m["baseline"])
        b = ", ".join(num(v) for v in m["candidate"])
        lines.append(f"| {m['name']} ({m['unit']}) | {a} | {b} |")
    return [*lines, "", "</details>"]


def render_markdown(result: dict) -> str:
    """The summary; the table first, the whole under 1 MiB."""
    load = result.get("load") or {}
    what = (f"{load.get('rate')} req/s open loop" if load.get("mode") == "open"
            else f"{load.get('users')} users closed loop")
    head = [f"## servelab gate: {ICONS.get(result['verdict'], '')} {result['verdict']}", "", *_table(result), "",
            f"{result['repeats']} repeats per side wanted; load: {what}, {load.get('duration_s')} s per repeat, "
            f"{load.get('max_tokens')} output tokens; alpha {result['alpha']}.", "", "### Why", "", *_why(result), ""]
    for cap, details in ((None, True), (None, False), (20, False)):
        parts = head + ["### Runs", "", *_runs(result, cap), ""] + (_details(result) if details else [])
        text = "\n".join(parts) + "\n"
        if len(text.encode()) < LIMIT_BYTES:
            return text
    return "\n".join(head)[: LIMIT_BYTES // 2] + "\n"


def verdict_table(result: dict):
    """The console view: a rich Table with the verdict as its title."""
    from rich.table import Table

    table = Table(title=f"gate: {result['verdict']}")
    for h in HEADER:
        table.add_column(h, justify="left" if h in ("metric", "verdict") else "right")
    for m in result["metrics"]:
        table.add_row(*row(m))
    for r in result.get("reasons") or []:
        table.caption = (table.caption + "; " if table.caption else "") + r
    return table
