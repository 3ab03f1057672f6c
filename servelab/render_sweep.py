"""Terminal rendering of sweeps: the list, and one sweep's capacity table and its points."""

from __future__ import annotations

from rich import box
from rich.table import Table


def _f(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _capacity(c: dict) -> str:
    if c.get("value") is None:
        return {"above": "above range", "below": "below range"}.get(c.get("bound") or "", "-")
    if c.get("ci_low") is None:
        return _f(c["value"])
    return f"{_f(c['value'])} [{_f(c['ci_low'])}, {_f(c['ci_high'])}]"


def sweeps_table(rows: list[dict]) -> Table:
    t = Table(title="sweeps", box=box.SIMPLE_HEAD)
    t.add_column("sweep_id", no_wrap=True, min_width=len("s20260101-120000-abcd"))
    for col in ("name", "status", "started (UTC)", "setups", "points"):
        t.add_column(col, overflow="fold", justify="right" if col == "points" else "left")
    for r in rows:
        started = (r.get("started_at") or "")[5:16].replace("T", " ") or "-"
        t.add_row(r["sweep_id"], r.get("name") or "-", r.get("status") or "-", started,
                  ", ".join(r.get("setups") or []), str(r.get("points", 0)))
    return t


def capacity_table(result: dict) -> Table:
    closed = result.get("closed_loop")
    title = (f"sweep {result['sweep_id']} ({result['status']}): capacity at SLO {result['slo']}, "
             f"{result['repeats']} repeat(s), 95% interval")
    t = Table(title=title, box=box.SIMPLE_HEAD)
    t.add_column("setup", overflow="fold")
    t.add_column("capacity\nreq/s", justify="right", no_wrap=True)
    t.add_column("capacity\noutput tok/s", justify="right", no_wrap=True)
    if closed:
        t.add_column("at users", justify="right")
    t.add_column("points", justify="right")
    for s in result["setups"]:
        row = [s["name"], _capacity(s["capacity_req_s"]), _capacity(s["capacity_output_tok_s"])]
        if closed:
            row.append(", ".join(_f(c, 1) for c in s.get("crossings") or [] if c is not None) or "-")
        t.add_row(*row, str(s["points_used"]))
    notes = [f"{s['name']}: {s['capacity_message']}" for s in result["setups"] if s.get("capacity_message")]
    if closed:
        notes.append("closed loop: capacity is the throughput at the most users that met the SLO")
    t.caption = "\n".join(notes) or None
    return t


def points_table(result: dict) -> Table:
    t = Table(title="points", box=box.SIMPLE_HEAD)
    unit = "users" if result.get("closed_loop") else "offered\nreq/s"
    for col in ("setup", "rep", unit, "served\nreq/s", "TTFT p99\nms", "TPOT p99\nms", "errors",
                "margin", "SLO\nmet", "run"):
        t.add_column(col, justify="left" if col in ("setup", "run") else "right", no_wrap=col != "setup")
    for s in result["setups"]:
        for p in s["points"]:
            load = p["users"] if p.get("users") is not None else p.get("offered_rate") or p.get("rate")
            t.add_row(s["name"], str(p["repeat"]), _f(load), _f(p.get("req_s")),
                      _f((p.get("ttft_ms") or {}).get("p99")), _f((p.get("tpot_ms") or {}).get("p99")),
                      _f(p.get("error_rate"), 3), _f(p.get("margin")), "yes" if p.get("slo_met") else "no",
                      p.get("run_id") or "-")
    return t
