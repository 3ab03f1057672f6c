"""Per-request metrics and percentiles, computed by hand from integer-ns records."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.metrics import (
    e2e_ns, is_ok, itl_ns, itl_token_ns, max_itl_ns, output_tokens, pooled_itl_ns, prompt_tokens,
    schedule_lag_ns, tokens_per_gap, tpot_ns, ttft_ns, ttft_sched_ns,
)
from analysis.records import as_records, field
from analysis.stats import percentile, percentiles

MS = 1_000_000


def rec(chunks_ms=(50, 60, 70, 80, 90), t_send=0, t_sched=None, t_last=None, **extra):
    """A finished request; times in ms, stored as integer ns like the spool."""
    chunk_ns = [c * MS for c in chunks_ms]
    r = {"req_id": "r", "status": "ok", "t_send_ns": t_send * MS,
         "t_sched_ns": None if t_sched is None else t_sched * MS,
         "t_first_ns": chunk_ns[0] if chunk_ns else None,
         "t_last_ns": (t_last * MS) if t_last is not None else (chunk_ns[-1] if chunk_ns else t_send * MS),
         "chunk_ns": chunk_ns, "output_tokens": None, "output_tokens_client": len(chunk_ns),
         "prompt_tokens": None, "prompt_tokens_client": None}
    return {**r, **extra}


def test_closed_loop_request_by_hand():
    r = rec()  # send 0, first chunk 50 ms, then one chunk every 10 ms, 5 tokens
    assert ttft_ns(r) == 50 * MS
    assert e2e_ns(r) == 90 * MS
    assert tpot_ns(r) == 10 * MS  # (90 - 50) / (5 - 1)
    assert itl_ns(r) == [10 * MS] * 4
    assert max_itl_ns(r) == 10 * MS
    assert ttft_sched_ns(r) is None and schedule_lag_ns(r) is None  # closed loop: not applicable


def test_open_loop_request_by_hand():
    r = rec(t_send=5, t_sched=2, chunks_ms=(40, 45, 70))
    assert schedule_lag_ns(r) == 3 * MS
    assert ttft_ns(r) == 35 * MS
    assert ttft_sched_ns(r) == 38 * MS  # includes the client's own lateness
    assert itl_ns(r) == [5 * MS, 25 * MS]
    assert max_itl_ns(r) == 25 * MS
    assert tpot_ns(r) == 15 * MS  # (70 - 40) / 2


def test_tpot_prefers_server_usage_and_counts_the_tail():
    # 3 content chunks but the server says 7 tokens; the response ends at 100 ms
    r = rec(chunks_ms=(40, 60, 80), t_last=100, output_tokens=7)
    assert output_tokens(r) == 7
    assert tpot_ns(r) == 10 * MS  # (100 - 40) / (7 - 1)
    assert output_tokens(rec()) == 5  # no usage: the client's chunk count


def test_itl_per_token_spreads_packed_tokens_over_the_chunk_gaps():
    # 3 content chunks carrying 9 tokens: 8 tokens after the first chunk over 2 gaps of 20 ms
    r = rec(chunks_ms=(40, 60, 80), t_last=100, output_tokens=9)
    assert itl_ns(r) == [20 * MS, 20 * MS] and tokens_per_gap(r) == 4.0
    assert itl_token_ns(r) == [5 * MS, 5 * MS]
    one_each = rec(chunks_ms=(40, 60, 80), t_last=100, output_tokens=3)
    assert itl_token_ns(one_each) == itl_ns(one_each)
    no_usage = rec(chunks_ms=(40, 60, 80), t_last=100)  # usage absent: every chunk counts as one token
    assert tokens_per_gap(no_usage) == 1.0 and itl_token_ns(no_usage) == [20 * MS, 20 * MS]


def test_not_applicable_is_none_never_zero():
    one = rec(chunks_ms=(50,))
    assert tpot_ns(one) is None and max_itl_ns(one) is None and itl_ns(one) == []
    failed = rec(chunks_ms=(), status="conn_error")
    assert ttft_ns(failed) is None and tpot_ns(failed) is None
    assert e2e_ns(failed) == 0 * MS  # the failure was seen at t_send here: a real 0, not "n/a"
    assert not is_ok(failed)


def test_prompt_tokens_fall_back_to_the_client_count():
    assert prompt_tokens(rec(prompt_tokens=12, prompt_tokens_client=10)) == 12
    assert prompt_tokens(rec(prompt_tokens_client=10)) == 10
    assert prompt_tokens(rec()) is None


def test_pooled_itl_is_every_gap_of_every_request():
    gaps = pooled_itl_ns([rec(), rec(chunks_ms=(40, 45, 70)), rec(chunks_ms=(50,))])
    assert sorted(gaps.tolist()) == sorted([10 * MS] * 4 + [5 * MS, 25 * MS])


def test_frame_rows_with_missing_values_read_as_none():
    df = pd.DataFrame([rec(t_sched=1), rec()])
    df["t_sched_ns"] = df["t_sched_ns"].astype("Int64")
    rows = as_records(df)
    assert rows[1]["t_sched_ns"] is None and rows[0]["t_sched_ns"] == 1 * MS
    assert type(rows[0]["t_send_ns"]) is int
    assert ttft_sched_ns(df.iloc[1]) is None and ttft_sched_ns(df.iloc[0]) == 49 * MS
    assert field({"x": float("nan")}, "x") is None and field({"x": np.int64(3)}, "x") == 3


def test_percentiles_of_one_to_hundred_ms():
    p = percentiles([i * MS for i in range(1, 101)], "ms")
    # linear interpolation: rank (n-1)*P/100 = 99*P/100 over sorted 1..100
    assert p == pytest.approx({"p50": 50.5, "p90": 90.1, "p95": 95.05, "p99": 99.01, "p999": 99.901, "mean": 50.5})


def test_percentiles_of_two_values_and_units():
    assert percentiles([10 * MS, 20 * MS])["p90"] == pytest.approx(19.0)
    assert percentiles([2_000_000_000], "s") == {k: 2.0 for k in ("p50", "p90", "p95", "p99", "p999", "mean")}
    assert percentile([30, None, 10, 20], 50) == 20.0


def test_percentiles_of_nothing_are_none():
    empty = percentiles([])
    assert empty == {"p50": None, "p90": None, "p95": None, "p99": None, "p999": None, "mean": None}
    assert percentiles([None, None]) == empty
    assert percentiles(np.empty(0)) == empty
    assert all(not isinstance(v, float) or not math.isnan(v) for v in percentiles([1.0]).values())
