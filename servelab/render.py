"""Terminal rendering of runs and summaries (rich tables); JSON output lives in the CLI."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from analysis.selfcheck import shown_status

LATENCIES = [
    ("ttft_ms", "TTFT"),
    ("ttft_sched_ms", "TTFT from schedule"),
    ("itl_ms", "ITL (per chunk)"),
    ("itl_token_ms", "ITL per token"),
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


def _load(r: dict) -> str:
    if r.get("mode") == "closed":
        return f"{r.get('users')} users"
    return f"{r.get('rate')} req/s" if r.get("rate") is not None else str(r.get("arrival") or "-")


def _short_time(iso: str | None) -> str:
    """`2026-11-25T14:12:53Z` -> `11-25 14:12`: the year, seconds and zone cost a narrow terminal."""
    return iso[5:16].replace("T", " ") if iso and len(iso) >= 16 else (iso or "-")


def runs_table(rows: list[dict]) -> Table:
    table = Table(title="runs", box=box.SIMPLE_HEAD)
    # The run id is what `servelab summary` takes: never truncate it; let the rest wrap.
    table.add_column("run_id", no_wrap=True, min_width=len("r20260101-120000-abcd"))
    table.add_column("status", overflow="fold", min_width=9)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("label · target", overflow="fold", min_width=8)
    table.add_column("load", overflow="fold", min_width=7)
    table.add_column("reqs", justify="right", no_wrap=True)
    for r in rows:
        table.add_row(r["run_id"], shown_status(r["status"], r.get("self_check")),
                      _short_time(r.get("started_at")),
                      " · ".join(str(x) for x in (r.get("label"), r.get("target")) if x) or "-", _load(r),
                      _num(r.get("requests")))
    return table


def summary_tables(s: dict) -> list[Table]:
    check = s.get("self_check") or {}
    verdict = None if not check else ("passed" if check.get("passed") else "failed")
    head = Table(title=f"run {s['run_id']} ({shown_status(s['status'], verdict)})", show_header=False)
    head.add_column("field")
    head.add_column("value")
    for key in ("target", "label", "requests", "measured_requests", "errors", "error_rate", "requested_rate",
                "offered_rate", "achieved_rate", "req_s", "output_tok_s", "total_tok_s", "goodput_req_s",
                "slo_attainment"):
        if s.get(key) is not None:
            head.add_row(key, _num(s[key], 3))
    _target_rows(head, s)
    if s.get("slo"):
        head.add_row("slo", ", ".join(s["slo"]))
        head.add_row("slo_met", "yes" if s.get("slo_met") else "no")
    if check:
        reasons = "; ".join(check.get("reasons") or [])
        head.add_row("self_check", "passed" if check.get("passed") else f"FAILED: {reasons}")
        if check.get("commonest_error") and "commonest:" not in reasons:
            head.add_row("commonest_error", check["commonest_error"])
        if check.get("client_stall_max_ms") is not None:
            head.add_row("client_stall_max_ms", _num(check["client_stall_max_ms"], 3))
    _hardware_rows(head, s.get("hardware"))
    for key, value in (s.get("setup") or {}).items():
        if value is not None:
            head.add_row(key, str(value))
    lat = Table(title="latency (ms)")
    lat.add_column("metric")
    for q in QUANTILES:
        lat.add_column(q, justify="right")
    for key, name in LATENCIES:
        stats = s.get(key) or {}
        if any(stats.get(q) is not None for q in QUANTILES):
            lat.add_row(name, *(_num(stats.get(q)) for q in QUANTILES))
    view = server_table(s.get("server"))
    ops = operators_table(s.get("operators"), s.get("profiler_windows"))
    segs = segments_table(s.get("steps") or [])
    eng = engine_table(s.get("engine_metrics"))
    return [head, lat] + [t for t in (segs, view, ops, eng) if t is not None]


ENGINE_ROWS = 16  # the summary's engine table; `summary --json` has every series


def engine_table(rows: list[dict] | None) -> Table | None:
    """The engine's own metrics over the run (/metrics scrapes): gauges by mean/max/last,
    counters by their growth; the engine's prefixed series first (vllm:, sglang:)."""
    if not rows:
        return None
    ordered = sorted(rows, key=lambda r: (not r.get("key"), ":" not in r["name"], r["kind"] != "gauge", r["name"]))
    table = Table(title=f"engine metrics (/metrics, {max(r['scrapes'] for r in rows)} scrapes)")
    for col in ("series", "mean", "max", "last", "growth"):
        table.add_column(col, justify="left" if col == "series" else "right")
    for r in ordered[:ENGINE_ROWS]:
        name = f"{r['name']}{{{r['labels']}}}" if r["labels"] else r["name"]
        table.add_row(name, _num(r["mean"], 3), _num(r["max"], 3), _num(r["last"], 3), _num(r["delta"], 3))
    if len(ordered) > ENGINE_ROWS:
        table.caption = f"{len(ordered) - ENGINE_ROWS} more series in summary --json"
    return table


def _target_rows(head: Table, s: dict) -> None:
    """How the run spoke to its target (analysis.summary.target_terms) and what it could not count."""
    if s.get("served_model"):
        head.add_row("served_model", str(s["served_model"]))
    if s.get("length_forcing") is False:
        head.add_row("output_lengths", "the server's own: ignore_eos/min_tokens not sent (off, or refused "
                                       "by the target); lengths from usage")
    if s.get("usage_missing"):
        head.add_row("usage_missing", f"{s['usage_missing']} requests streamed without usage: "
                                      "their output tokens are the chunk count (an estimate)")


def segments_table(steps: list[dict]) -> Table | None:
    """One row per rate segment of a steps/ramp step (analysis/segments.py)."""
    rows = [seg for st in steps for seg in (st.get("segments") or [])]
    if not rows:
        return None
    t = Table(title="per rate segment (each judged over its own window)", box=box.SIMPLE_HEAD)
    for col in ("seconds", "offered\nreq/s", "served\nreq/s", "TTFT p50\nms", "TTFT p99\nms",
                "TPOT p99\nms", "errors", "SLO\nmet"):
        t.add_column(col, justify="right", no_wrap=True)
    for seg in rows:
        met = seg.get("slo_met")
        t.add_row(f"{seg['segment_start_s']:g}-{seg['segment_end_s']:g}", _num(seg.get("offered_rate")),
                  _num(seg.get("req_s")), _num((seg.get("ttft_ms") or {}).get("p50")),
                  _num((seg.get("ttft_ms") or {}).get("p99")), _num((seg.get("tpot_ms") or {}).get("p99")),
                  _num(seg.get("errors")), "-" if met is None else "yes" if met else "no")
    return t


def operators_table(ops: list[dict] | None, windows: list[dict] | None = None) -> Table | None:
    """The torch-profiler window's top operators, by self time (CUDA first where measured)."""
    if not ops:
        return None
    window = ops[0].get("window_s")
    t = Table(title="top operators (PyTorch profiler" + (f", {window:.2f} s window)" if window else ")"))
    for col in ("step", "operator", "calls", "self CPU ms", "self CUDA ms"):
        if col == "operator":
            t.add_column(col, overflow="fold")  # names are long (aten::_scaled_dot_product_...)
        else:
            t.add_column(col, justify="right", no_wrap=True)
    for op in ops:
        ms = [None if op.get(k) is None else op[k] / 1000 for k in ("self_cpu_us", "self_cuda_us")]
        t.add_row(str(op.get("step")), str(op.get("name")), _num(op.get("calls"), 0), *(_num(v) for v in ms))
    lines = [f"Chrome trace: {ops[0]['trace_path']}"] if ops[0].get("trace_path") else []
    for w in windows or []:
        if w.get("start_s") is not None:
            lines.append(f"step {w['step']}: profiled {w['start_s']:.1f}-{w['end_s']:.1f} s into the step;"
                         f" {w['requests_in_window']} requests ran under the profiler (slower)")
    t.caption = "\n".join(lines) or None
    return t


def server_table(view: dict | None) -> Table | None:
    """The server's own view of the measured requests (analysis/server_view.py)."""
    if not view:
        return None
    t = Table(title="server's view (measured requests)", show_header=False)
    t.add_column("field")
    t.add_column("value", overflow="fold")
    t.add_row("responses", str(view["responses"]))
    if view.get("cache"):
        t.add_row("cache", ", ".join(f"{k} {n}" for k, n in sorted(view["cache"].items())))
    for tier, e in sorted((view.get("tiers") or {}).items()):
        refused = ", ".join(f"{r} {n}" for r, n in sorted(e["refused"].items()))
        t.add_row(f"tier {tier}", f"served {e['served']}" + (f"; refused: {refused}" if refused else ""))
    if view.get("degraded"):
        t.add_row("degraded", ", ".join(f"{k} {n}" for k, n in sorted(view["degraded"].items())))
    for key in ("queue_ms", "prefill_ms", "decode_ms"):
        d = view.get(key) or {}
        if d.get("p50") is not None:
            t.add_row(f"{key} p50 / p99", f"{_num(d['p50'])} / {_num(d['p99'])}")
    if view.get("batch_mean") is not None:
        t.add_row("batch_mean", _num(view["batch_mean"]))
    for key in ("prefix_tokens_mean", "embed_ms_p50"):
        if view.get(key) is not None:
            t.add_row(key, _num(view[key]))
    return t


HARDWARE = [("power_w_mean", "power_w_mean"), ("power_w_peak", "power_w_peak"),
            ("j_per_output_token", "j_per_output_token"), ("tokens_per_joule", "tokens_per_joule"),
            ("gpu_s_per_1m_tokens", "gpu_s_per_1m_tokens"), ("gpu_util_pct_mean", "gpu_util_pct_mean")]


def _hardware_rows(table: Table, hw: dict | None) -> None:
    if not hw:
        return
    for key, name in HARDWARE:
        if hw.get(key) is not None:
            table.add_row(name, _num(hw[key], 3))
    if hw.get("mem_used_bytes_peak") is not None:
        table.add_row("gpu_mem_used_gib_peak", _num(hw["mem_used_bytes_peak"] / (1 << 30), 2))
    for role, pct in (hw.get("cpu_pct_mean") or {}).items():
        if pct is not None and role != "core":
            table.add_row(f"cpu_pct_mean ({role})", _num(pct, 1))
    if hw.get("sample_source"):
        table.add_row("gpu samples from", hw["sample_source"])


def print_summary(console: Console, s: dict) -> None:
    for t in summary_tables(s):
        console.print(t)
