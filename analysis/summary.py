"""Step and run summaries: every metric of docs/metrics.md as one JSON-ready dict.

`summarize_step` judges one step over its steady window; `summarize_run` does the same
for every step and pools all steps' measured requests for the run-level figures
(run throughput = completions in all windows / sum of window lengths). Values are
plain ints, floats, strings, bools or None (not applicable), never numpy types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis import hardware as hw
from analysis import throughput as tp
from analysis.segments import segment_rows
from analysis import window as win
from analysis.records import field
from analysis.server_view import server_view
from analysis.slo import evaluate_terms, format_term, parse_slo, slo_attainment
from analysis.stats import percentiles
from analysis.table import RequestTable, request_table
from servelab.config import SLOTerm

SloArg = str | list[SLOTerm] | list[dict[str, Any]] | None


@dataclass
class StepView:
    """One step's populations as masks over the run's RequestTable."""

    step: Mapping[str, Any]
    rows: np.ndarray  # this step's requests
    window: win.Window | None
    measured: np.ndarray
    completed: np.ndarray
    sent: np.ndarray


def slo_terms(slo: SloArg) -> list[SLOTerm]:
    """SLO terms from a string, SLOTerm list, or list of dicts (as stored in a run config)."""
    if slo is None:
        return []
    if isinstance(slo, str):
        return parse_slo(slo)
    return [t if isinstance(t, SLOTerm) else SLOTerm(**t) for t in slo]


def step_view(step: Mapping[str, Any], table: RequestTable, rows: np.ndarray) -> StepView:
    """Select the measured, completed and sent requests of one step's steady window."""
    window = win.steady_window(step, table, rows)
    return StepView(step, rows, window, win.measured(table, rows, window, field(step, "mode")),
                    win.completed(table, rows, window), win.sent(table, rows, window))


def _latencies(table: RequestTable, measured: np.ndarray) -> dict[str, Any]:
    ok = measured & table.ok

    def dist(name: str, rows: np.ndarray) -> dict[str, float | None]:
        v = table.values[name][rows]
        return percentiles(v[~np.isnan(v)], "ms")

    return {
        "ttft_ms": dist("ttft", ok),
        "ttft_sched_ms": dist("ttft_sched", ok),
        "itl_ms": percentiles(table.gaps[ok[table.gap_row]], "ms"),
        "itl_token_ms": percentiles(table.token_gaps[ok[table.gap_row]], "ms"),
        "tpot_ms": dist("tpot", ok),
        "e2e_ms": dist("e2e", ok),
        # Lateness is the load generator's own, whatever the server answered: every request counts.
        "schedule_lag_ms": dist("schedule_lag", measured),
    }


def _slo_fields(table: RequestTable, measured: np.ndarray, completed: np.ndarray,
                terms: list[SLOTerm], seconds: float | None) -> dict[str, Any]:
    if not terms:
        return {"slo": None, "slo_terms": None, "goodput_req_s": None, "slo_attainment": None, "slo_met": None}
    evaluated = evaluate_terms(table, terms, measured)
    return {"slo": [format_term(t) for t in terms], "slo_terms": evaluated,
            "goodput_req_s": tp.goodput_req_s(table, completed, terms, seconds),
            "slo_attainment": slo_attainment(table, terms, measured),
            "slo_met": all(e["met"] for e in evaluated) if measured.any() else None}


def _requested_rate(views: list[StepView]) -> float | None:
    """Open-loop rate asked for, window-weighted over the steps; None if any step is closed."""
    pairs = [(field(v.step, "rate"), win.window_seconds(v.window) or 0.0) for v in views]
    if not views or any(field(v.step, "mode") != "open" or r is None for v, (r, _) in zip(views, pairs)):
        return None
    total = sum(s for _, s in pairs)
    if not total:
        return float(pairs[0][0]) if len(pairs) == 1 else None
    return sum(r * s for r, s in pairs) / total


def _offered_rate(views: list[StepView], measured: np.ndarray, seconds: float | None) -> float | None:
    """Open loop: the arrivals the schedule offered inside the windows, per second (any
    outcome, sent late or not); None for closed loop, where the load is the users.

    Formula: offered_rate = #(requests with t_sched in window) / window_s
    """
    if not views or any(field(v.step, "mode") != "open" for v in views):
        return None
    return tp.achieved_rate(measured, seconds)


def _union(views: list[StepView], name: str, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    for v in views:
        out |= getattr(v, name)
    return out


def pooled_metrics(table: RequestTable, views: list[StepView], terms: list[SLOTerm]) -> dict[str, Any]:
    """Every metric over one or more steps' views (one step -> that step's figures)."""
    windows = [s for v in views if (s := win.window_seconds(v.window)) is not None]
    seconds = sum(windows) if windows else None
    rows, measured = _union(views, "rows", len(table)), _union(views, "measured", len(table))
    completed, sent = _union(views, "completed", len(table)), _union(views, "sent", len(table))
    return {
        "requests": int(rows.sum()),
        "measured_requests": int(measured.sum()),
        "errors": int((measured & ~table.ok).sum()),
        "cancelled": int((measured & (table.status == "cancelled")).sum()),
        # ok streams that came without usage: their output length is the chunk count (an estimate).
        "usage_missing": int((measured & table.ok & table.usage_missing).sum()),
        "error_rate": tp.error_rate(table, measured),
        "window_s": seconds,
        "req_s": tp.req_s(table, completed, seconds),
        "output_tok_s": tp.output_tok_s(table, completed, seconds),
        "total_tok_s": tp.total_tok_s(table, completed, seconds),
        "requested_rate": _requested_rate(views),
        "offered_rate": _offered_rate(views, measured, seconds),
        "achieved_rate": tp.achieved_rate(sent, seconds),
        **_latencies(table, measured),
        **_slo_fields(table, measured, completed, terms, seconds),
    }


def _step_header(view: StepView) -> dict[str, Any]:
    s = view.step
    head = {"step": field(s, "step"), "mode": field(s, "mode"), "users": field(s, "users"),
            "rate": field(s, "rate"), "status": field(s, "status"),
            "window_start_ns": view.window[0] if view.window else None,
            "window_end_ns": view.window[1] if view.window else None}
    if field(s, "segment") is not None:
        head.update({k: field(s, k) for k in ("segment", "segment_start_s", "segment_end_s")})
    return head


def _segments(step: Mapping[str, Any], table: RequestTable, rows: np.ndarray, load: Mapping[str, Any],
              terms: list[SLOTerm]) -> list[dict[str, Any]] | None:
    """Each rate segment of a steps/ramp step summarised as a step (analysis/segments.py)."""
    parts = segment_rows(step, load)
    if not parts:
        return None
    views = [step_view(p, table, rows) for p in parts]
    return [{**_step_header(v), **pooled_metrics(table, [v], terms)} for v in views]


def _rows_of_step(table: RequestTable, step: Mapping[str, Any]) -> np.ndarray:
    k = field(step, "step")
    if k is None or np.isnan(table.step).all():
        return table.all_rows()  # records without a step column all belong to this step
    return table.step == k


def summarize_step(step: Mapping[str, Any], requests: pd.DataFrame | list[Mapping[str, Any]],
                   slo: SloArg = None) -> dict[str, Any]:
    """Summary of one step. `requests` may hold other steps' rows too; only this step's count."""
    table = request_table(requests)
    view = step_view(step, table, _rows_of_step(table, step))
    return {**_step_header(view), **pooled_metrics(table, [view], slo_terms(slo))}


def _steps_or_inferred(steps: Sequence[Mapping[str, Any]], table: RequestTable,
                       run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The run's step rows, or one minimal row per step seen in the requests when it has none."""
    if steps:
        return sorted(steps, key=lambda s: field(s, "step") or 0)
    load = (run.get("config") or {}).get("load") or {}
    seen = sorted({int(k) for k in table.step[~np.isnan(table.step)]})
    return [{"step": k, "mode": load.get("mode"), "users": load.get("users"), "rate": load.get("rate")}
            for k in seen]


def _step_hardware(samples: pd.DataFrame | None, view: StepView, metrics: dict[str, Any]):
    """(hardware figures, window_s, output tokens) of one step; figures None without samples."""
    seconds, rate = metrics["window_s"], metrics["output_tok_s"]
    tokens = rate * seconds if rate is not None and seconds else None
    if samples is None or not len(samples):
        return None, seconds, tokens
    k = field(view.step, "step")
    mine = samples[samples["step"] == k] if "step" in samples and k is not None else samples
    return hw.hardware_figures(mine, view.window, tokens), seconds, tokens


def target_terms(load: Mapping[str, Any]) -> dict[str, Any]:
    """How the run spoke to its target: the model name sent, and whether output lengths were
    forced (ignore_eos/min_tokens: true; false when off or refused by the target; None when
    the run never got as far as its warm-up)."""
    return {"served_model": load.get("served_model", load.get("model")), "length_forcing": load.get("ignore_eos")}


def summarize_run(run: Mapping[str, Any], steps: Sequence[Mapping[str, Any]],
                  requests: pd.DataFrame | list[Mapping[str, Any]], slo: SloArg = None,
                  samples: hw.SampleArg = None, table: RequestTable | None = None) -> dict[str, Any]:
    """Summary of a run: run-level figures over all steps' measured requests, plus `steps`.

    With slo=None the run's own stored SLO (`config["slo"]`) is used; pass "" or [] for none.
    `samples` (the run's `samples` rows) adds a `hardware` object per step and for the run
    (analysis/hardware.py); it is None when there are no samples. `table`: the requests'
    RequestTable when the caller already built it (one per run, shared with measured_latencies).
    """
    table = request_table(requests) if table is None else table
    terms = slo_terms((run.get("config") or {}).get("slo") if slo is None else slo)
    views = [step_view(s, table, _rows_of_step(table, s)) for s in _steps_or_inferred(steps, table, run)]
    header = {k: run.get(k) for k in ("run_id", "status", "label", "target", "started_at", "ended_at",
                                      "self_check")}
    header.update(target_terms((run.get("config") or {}).get("load") or {}))
    body = pooled_metrics(table, views, terms)
    body["requests"] = len(table)  # every recorded request, including ones outside any step row
    step_summaries = [{**_step_header(v), **pooled_metrics(table, [v], terms)} for v in views]
    load = (run.get("config") or {}).get("load") or {}
    for s, v in zip(step_summaries, views):
        s["segments"] = _segments(v.step, table, v.rows, load, terms)
    frame = None if samples is None else hw.frame(samples)
    parts = [_step_hardware(frame, v, s) for v, s in zip(views, step_summaries)]
    for s, (figures, _, _) in zip(step_summaries, parts):
        s["hardware"] = figures
    # The server's own view (cache outcomes, tiers, refusals, its timings) of the measured requests.
    body["server"] = server_view(requests, _union(views, "measured", len(table)))
    return {**header, **body, "hardware": hw.run_hardware(parts), "steps": step_summaries}


def measured_latencies(run: Mapping[str, Any], steps: Sequence[Mapping[str, Any]],
                       requests: pd.DataFrame | list[Mapping[str, Any]],
                       table: RequestTable | None = None) -> dict[str, np.ndarray]:
    """The raw values (ns) behind a run's latency percentiles: TTFT, ITL gaps and E2E of the
    ok requests offered inside the steady windows, the population `summarize_run` reports."""
    table = request_table(requests) if table is None else table
    views = [step_view(s, table, _rows_of_step(table, s)) for s in _steps_or_inferred(steps, table, run)]
    ok = _union(views, "measured", len(table)) & table.ok

    def values(name: str) -> np.ndarray:
        v = table.values[name][ok]
        return v[~np.isnan(v)]

    return {"ttft": values("ttft"), "itl": np.asarray(table.gaps[ok[table.gap_row]], dtype=np.float64),
            "e2e": values("e2e")}
