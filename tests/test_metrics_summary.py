"""Steady windows, throughput, goodput and the summary JSON shape, by hand."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from analysis.summary import summarize_run, summarize_step
from analysis.table import request_table
from analysis.window import steady_window

S = 1_000_000_000
MS = 1_000_000
LATENCY_KEYS = ("ttft_ms", "ttft_sched_ms", "itl_ms", "tpot_ms", "e2e_ms", "schedule_lag_ms")
DIST_KEYS = {"p50", "p90", "p95", "p99", "p999", "mean"}


def rec(req_id, send_s, last_s, *, status="ok", out=5, prompt=100, sched_s=None, step=0, ttft_ms=50):
    send, last = round(send_s * S), round(last_s * S)
    first = send + ttft_ms * MS if status == "ok" else None
    chunks = [first + (last - first) * i // (out - 1) for i in range(out)] if first is not None else []
    return {"req_id": req_id, "step": step, "status": status, "t_send_ns": send,
            "t_sched_ns": None if sched_s is None else round(sched_s * S), "t_first_ns": first,
            "t_last_ns": last, "chunk_ns": chunks, "output_tokens": None,
            "output_tokens_client": len(chunks) if status == "ok" else 0,
            "prompt_tokens": prompt, "prompt_tokens_client": None}


def closed_step(**extra):
    # 10 s step, 2 s warm-up, drained until 12 s: steady window [2 s, 10 s] = 8 s
    return {"step": 0, "mode": "closed", "users": 2, "rate": None, "duration_s": 10.0, "warmup_s": 2.0,
            "t_start_ns": 0, "t_end_ns": 12 * S, "status": "completed", **extra}


def closed_requests():
    return [
        rec("warm", 1.0, 3.0),                     # sent in warm-up, completes in window
        rec("a", 4.0, 5.0, out=10),                # measured, completes in window
        rec("err", 6.0, 6.1, status="http_error"),  # measured error
        rec("cxl", 8.0, 9.0, status="cancelled"),   # measured, cancelled
        rec("late", 9.5, 11.0),                    # measured, completes after the window
        rec("drain", 11.0, 11.5),                  # neither
    ]


def test_steady_window_and_fallback():
    none, recs = request_table([]), request_table(closed_requests())
    assert steady_window(closed_step(), none) == (2 * S, 10 * S)
    assert steady_window(closed_step(t_end_ns=7 * S), none) == (2 * S, 7 * S)  # ended early
    assert steady_window({"step": 0}, recs) == (1 * S, round(11.5 * S))  # [min send, max last]
    assert steady_window(closed_step(warmup_s=20.0), recs) == (1 * S, round(11.5 * S))  # empty -> fallback
    assert steady_window({"step": 0}, none) is None


def test_closed_loop_step_by_hand():
    s = summarize_step(closed_step(), closed_requests())
    assert (s["requests"], s["measured_requests"], s["errors"], s["cancelled"]) == (6, 4, 2, 1)
    assert s["error_rate"] == 0.5
    assert s["window_s"] == 8.0
    assert s["req_s"] == 2 / 8  # "warm" and "a" finish inside [2 s, 10 s]
    assert s["output_tok_s"] == (5 + 10) / 8
    assert s["total_tok_s"] == (5 + 10 + 100 + 100) / 8
    assert s["achieved_rate"] == 4 / 8
    assert s["requested_rate"] is None
    # latency over ok measured requests only: "a" (ttft 50, e2e 1000) and "late" (50, 1500)
    assert s["ttft_ms"]["p50"] == 50.0
    assert s["e2e_ms"]["mean"] == 1250.0 and s["e2e_ms"]["p50"] == 1250.0
    assert s["tpot_ms"]["p50"] == pytest.approx(((950 / 9) + (1450 / 4)) / 2)
    assert s["ttft_sched_ms"] == dict.fromkeys(DIST_KEYS) and s["schedule_lag_ms"] == dict.fromkeys(DIST_KEYS)
    assert s["slo"] is None and s["goodput_req_s"] is None and s["slo_attainment"] is None and s["slo_met"] is None


def test_open_loop_measures_by_schedule_and_reports_lag():
    step = closed_step(mode="open", users=None, rate=0.5)
    recs = [
        rec("on-time", 3.0, 3.5, sched_s=3.0),
        rec("late-send", 10.5, 10.9, sched_s=9.9),  # scheduled in window, sent after it
        rec("early", 1.0, 1.4, sched_s=1.0),
    ]
    s = summarize_step(step, recs)
    assert s["measured_requests"] == 2
    assert s["achieved_rate"] == 1 / 8 and s["requested_rate"] == 0.5
    assert s["schedule_lag_ms"]["p50"] == pytest.approx(300.0)  # lags 0 and 600 ms
    assert s["ttft_sched_ms"]["mean"] == pytest.approx((50 + 650) / 2)
    assert s["ttft_ms"]["mean"] == 50.0


def test_goodput_and_attainment_count_errors_as_misses():
    recs = [rec("fast1", 3.0, 3.5), rec("fast2", 4.0, 4.5), rec("slow", 5.0, 5.5, ttft_ms=150),
            rec("err", 6.0, 6.2, status="timeout")]
    s = summarize_step(closed_step(), recs, "ttft_p50<=100ms")
    assert s["slo"] == ["ttft_p50<=100ms"]
    assert s["goodput_req_s"] == 2 / 8  # two completions met the SLO
    assert s["req_s"] == 3 / 8
    assert s["slo_attainment"] == 2 / 4  # the timeout is a miss
    assert s["slo_terms"] == [{"term": "ttft_p50<=100ms", "value_ms": pytest.approx(100.0), "met": True}]
    assert s["slo_met"] is True
    strict = summarize_step(closed_step(), recs, "ttft_p99<=1s")
    assert strict["slo_met"] is False  # every ok request is fast, but the timeout sinks p99
    assert strict["slo_terms"][0]["value_ms"] is None


def test_a_step_that_measured_nothing_has_no_rates_of_latency():
    s = summarize_step(closed_step(), [rec("drain", 11.0, 11.5)], "ttft_p99<=1s")
    assert s["measured_requests"] == 0 and s["error_rate"] is None
    assert s["req_s"] == 0.0  # the window existed and nothing completed in it: a real zero
    assert s["ttft_ms"]["p99"] is None and s["slo_met"] is None and s["slo_attainment"] is None


def walk(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v)
    else:
        yield obj


def two_step_run():
    run = {"run_id": "r1", "status": "completed", "label": "demo", "target": "builtin",
           "started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T00:01:00Z",
           "config": {"load": {"mode": "closed"}, "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": 100}]}}
    steps = [closed_step(), closed_step(step=1, users=4, t_start_ns=20 * S, t_end_ns=32 * S)]
    reqs = closed_requests() + [rec("b", 24.0, 25.0, step=1), rec("c", 26.0, 27.0, step=1, ttft_ms=200)]
    return run, steps, pd.DataFrame(reqs)


def test_run_summary_shape_and_pooling():
    run, steps, df = two_step_run()
    s = summarize_run(run, steps, df)
    required = {"run_id", "status", "label", "target", "started_at", "ended_at", "requests",
                "measured_requests", "errors", "cancelled", "error_rate", "req_s", "output_tok_s",
                "total_tok_s", *LATENCY_KEYS, "slo", "goodput_req_s", "slo_attainment", "slo_met", "steps"}
    assert required <= set(s)
    for key in LATENCY_KEYS:
        assert set(s[key]) == DIST_KEYS
    assert (s["run_id"], s["status"], s["label"], s["target"]) == ("r1", "completed", "demo", "builtin")
    assert s["requests"] == 8 and s["measured_requests"] == 6
    assert s["req_s"] == (2 + 2) / (8 + 8)  # completions in windows / sum of windows
    assert s["slo"] == ["ttft_p99<=100ms"]  # the run's stored SLO
    assert s["slo_attainment"] == pytest.approx(3 / 6)  # a, late, b meet; err, cxl, c miss
    assert s["slo_met"] is False
    assert [(x["step"], x["mode"], x["users"], x["rate"]) for x in s["steps"]] == [(0, "closed", 2, None),
                                                                                   (1, "closed", 4, None)]
    assert s["steps"][1]["req_s"] == 2 / 8 and s["steps"][1]["measured_requests"] == 2
    for key in ("req_s", "ttft_ms", "slo_met", "error_rate"):
        assert key in s["steps"][0]
    assert all(v is None or type(v) in (int, float, str, bool) for v in walk(s))
    json.dumps(s, allow_nan=False)
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in walk(s))


def test_run_summary_slo_override_and_none():
    run, steps, df = two_step_run()
    assert summarize_run(run, steps, df, "e2e_p50<=10s")["slo"] == ["e2e_p50<=10000ms"]  # canonical: ms
    none = summarize_run(run, steps, df, "")
    assert (none["slo"], none["goodput_req_s"], none["slo_attainment"], none["slo_met"]) == (None,) * 4
    assert summarize_run(run, steps, df, [])["slo"] is None


def test_run_without_step_rows_infers_steps_from_requests():
    run, _, df = two_step_run()
    s = summarize_run(run, [], df)
    assert [x["step"] for x in s["steps"]] == [0, 1]
    assert s["requests"] == 8 and s["steps"][0]["mode"] == "closed"


def test_a_request_never_sent_counts_against_open_loop_only():
    never = {"req_id": "n", "step": 0, "status": "cancelled", "t_sched_ns": 5 * S, "t_send_ns": None,
             "t_first_ns": None, "t_last_ns": None, "chunk_ns": [], "output_tokens": None,
             "output_tokens_client": 0, "prompt_tokens": None, "prompt_tokens_client": 16}
    sent = rec("ok", 4.0, 4.5, sched_s=4.0)
    open_loop = summarize_step(closed_step(mode="open", rate=0.25), [sent, never])
    assert (open_loop["measured_requests"], open_loop["errors"], open_loop["cancelled"]) == (2, 1, 1)
    assert open_loop["achieved_rate"] == 1 / 8  # it was scheduled but never offered to the server
    closed = summarize_step(closed_step(), [sent, {**never, "t_sched_ns": None}])
    assert (closed["requests"], closed["measured_requests"], closed["errors"]) == (2, 1, 0)
