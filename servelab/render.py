"""Terminal rendering of runs and summaries (rich tables); JSON output lives in the CLI."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

LATENCIES = [
    ("ttft_ms", "TTFT"),
    ("ttft_sched_ms", "TTFT from schedule"),
    ("itl_ms", "ITL"),
    ("tpot_ms", "TPOT"),
    ("e2e_ms", "E2E"),
    ("schedule_lag_ms", "schedule lag"),
]
QUANTILES = ["p50", "p90", "p95", "p99", "p999", "mean"]


def _num(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def runs_table(rows: list[dict]) -> Table:
    table = Table(title="runs")
    for col in ("run_id", "status", "started_at", "target", "label", "load", "requests"):
        table.add_column(col)
    for r in rows:
        load = f"{r.get('users')} users" if r.get("mode") == "closed" else f"{r.get('rate')} req/s"
        table.add_row(r["run_id"], r["status"], str(r.get("started_at") or "-"),
                      str(r.get("target") or "-"), r.get("label") or "", load,
                      _num(r.get("requests")))
    return table


def summary_tables(s: dict) -> list[Table]:
    head = Table(title=f"run {s['run_id']} ({s['status']})", show_header=False)
    head.add_column("field")
    head.add_column("value")
    for key in ("target", "label", "requests", "measured_requests", "errors", "error_rate",
                "req_s", "output_tok_s", "total_tok_s", "goodput_req_s", "slo_attainment"):
        if s.get(key) is not None:
            head.add_row(key, _num(s[key], 3))
    if s.get("slo"):
        head.add_row("slo", ", ".join(s["slo"]))
        head.add_row("slo_met", "yes" if s.get("slo_met") else "no")
    lat = Table(title="latency (ms)")
    lat.add_column("metric")
    for q in QUANTILES:
        lat.add_column(q, justify="right")
    for key, name in LATENCIES:
        stats = s.get(key) or {}
        if any(stats.get(q) is not None for q in QUANTILES):
            lat.add_row(name, *(_num(stats.get(q)) for q in QUANTILES))
    return [head, lat]


def print_summary(console: Console, s: dict) -> None:
    for t in summary_tables(s):
        console.print(t)
