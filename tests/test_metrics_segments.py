"""Per-rate segments of steps/ramp steps, and the offered rate, by hand (analysis/segments.py)."""

from __future__ import annotations

import pytest

from analysis.segments import RAMP_BINS, segment_rows
from analysis.summary import summarize_run
from tests.test_metrics_summary import S, rec

STEP = {"step": 0, "mode": "open", "users": None, "rate": None, "duration_s": 20.0, "warmup_s": 1.0,
        "t_start_ns": 0, "t_end_ns": 22 * S, "status": "completed"}
STEPS_LOAD = {"mode": "open", "arrival": "steps", "rate_steps": [[1, 10], [4, 10]], "duration_s": 20.0}


def arrivals(start_s, end_s, rate, ttft_ms):
    n = round((end_s - start_s) * rate)
    return [rec(f"r{start_s}-{i}", start_s + i / rate, start_s + i / rate + 0.2, sched_s=start_s + i / rate,
                ttft_ms=ttft_ms) for i in range(n)]


def test_steps_segments_have_their_own_window_rate_and_latency():
    parts = segment_rows(STEP, STEPS_LOAD)
    assert [(p["segment_start_s"], p["segment_end_s"], p["rate"], p["warmup_s"]) for p in parts] == [
        (0, 10, 1.0, 1.0), (10, 20, 4.0, 1.0)]
    requests = arrivals(0, 10, 1, ttft_ms=20) + arrivals(10, 20, 4, ttft_ms=120)
    run = {"run_id": "r", "status": "completed", "config": {"load": STEPS_LOAD, "slo": "ttft_p99<=100ms"}}
    s = summarize_run(run, [STEP], requests)
    low, high = s["steps"][0]["segments"]
    assert low["offered_rate"] == pytest.approx(1.0, rel=0.15) and high["offered_rate"] == pytest.approx(4.0, rel=0.05)
    assert low["ttft_ms"]["p99"] == pytest.approx(20) and high["ttft_ms"]["p99"] == pytest.approx(120)
    assert low["slo_met"] is True and high["slo_met"] is False
    assert s["slo_met"] is False  # the pooled step hides where it turned; the segments say
    assert s["offered_rate"] == pytest.approx(len([r for r in requests if r["t_sched_ns"] >= S]) / 19)


def test_ramp_bins_and_one_rate_steps_have_no_segments():
    ramp = segment_rows(STEP, {"mode": "open", "arrival": "ramp", "rate": 2, "rate_end": 12})
    assert len(ramp) == RAMP_BINS and [p["rate"] for p in ramp] == [3, 5, 7, 9, 11]
    assert [p["warmup_s"] for p in ramp] == [1.0, 0, 0, 0, 0]
    assert segment_rows(STEP, {"mode": "open", "arrival": "poisson", "rate": 3}) == []
    assert segment_rows(STEP, {"mode": "open", "arrival": "steps", "rate_steps": [[5, 60]]}) == []
    closed = summarize_run({"run_id": "r", "config": {"load": {"mode": "closed"}}},
                           [{**STEP, "mode": "closed", "users": 2}], [rec("a", 2, 3)])
    assert closed["offered_rate"] is None and closed["steps"][0]["segments"] is None
