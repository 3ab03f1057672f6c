"""The per-request frame and pooled ITL used by the dashboard, checked by hand."""

from __future__ import annotations

import math

import pandas as pd

from analysis.frames import itl_ms, request_frame

S, MS = 1_000_000_000, 1_000_000


def rec(req_id, send_ms, chunks_ms, status="ok", sched_ms=None):
    chunks = [c * MS for c in chunks_ms]
    return {"req_id": req_id, "step": 0, "status": status, "t_sched_ns": None if sched_ms is None else sched_ms * MS,
            "t_send_ns": 5 * S + send_ms * MS, "t_first_ns": 5 * S + chunks[0] if chunks else None,
            "t_last_ns": 5 * S + (chunks[-1] if chunks else send_ms * MS),
            "chunk_ns": [5 * S + c for c in chunks], "output_tokens": None,
            "output_tokens_client": len(chunks), "prompt_tokens": 7, "prompt_tokens_client": None}


def records():
    return [rec("a", 0, [40, 50, 60]), rec("b", 1500, [1530, 1560]), rec("c", 2000, [], status="timeout")]


def test_request_frame_by_hand():
    for source in (records(), pd.DataFrame(records())):
        f = request_frame(source)
        assert list(f["req_id"]) == ["a", "b", "c"]
        assert list(f["t_s"]) == [0.0, 1.5, 2.0]
        assert list(f["ttft_ms"][:2]) == [40.0, 30.0] and math.isnan(f["ttft_ms"][2])
        assert list(f["e2e_ms"]) == [60.0, 60.0, 0.0]
        assert list(f["tpot_ms"][:2]) == [10.0, 30.0]
        assert list(f["itl_max_ms"][:2]) == [10.0, 30.0]
        assert f["ttft_sched_ms"].isna().all() and list(f["status"]) == ["ok", "ok", "timeout"]
        assert list(f["prompt_tokens"]) == [7.0, 7.0, 7.0]


def test_itl_ms_pools_gaps_of_ok_requests():
    failed_with_chunks = rec("d", 0, [10, 90], status="stream_error")
    assert sorted(itl_ms(records() + [failed_with_chunks]).tolist()) == [10.0, 10.0, 30.0]
    assert itl_ms([]).size == 0
