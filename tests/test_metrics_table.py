"""The per-request table and the mask-based SLO checks agree with the one-record definitions."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd

from analysis.metrics import (
    e2e_ns, itl_gaps, max_itl_ns, schedule_lag_ns, tpot_ns, ttft_ns, ttft_sched_ns,
)
from analysis.slo import meets_mask, meets_slo, parse_slo, pass_mask, term_passes
from analysis.table import INTEGER_FIELDS, RequestTable, request_table

MS = 1_000_000
DEFINITIONS = {"ttft": ttft_ns, "ttft_sched": ttft_sched_ns, "schedule_lag": schedule_lag_ns,
               "e2e": e2e_ns, "tpot": tpot_ns, "itl_max": max_itl_ns}


def random_records(n, seed=7):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        send = 10**15 + rng.randrange(10**10)  # large absolute perf_counter values
        n_chunks = rng.choice([0, 1, 2, 5, 17])
        first = send + rng.randrange(1, 300) * MS
        chunks = [first]
        for _ in range(n_chunks - 1):
            chunks.append(chunks[-1] + rng.randrange(0, 40 * MS))
        chunks = chunks[:n_chunks]
        out.append({
            "req_id": f"r{i}", "step": i % 3, "status": rng.choice(["ok", "ok", "ok", "timeout", "cancelled"]),
            "t_sched_ns": send - rng.randrange(5 * MS) if i % 2 else None, "t_send_ns": send,
            "t_first_ns": chunks[0] if chunks else None,
            "t_last_ns": (chunks[-1] + rng.randrange(MS)) if chunks else send + MS, "chunk_ns": chunks,
            "output_tokens": rng.choice([None, n_chunks, n_chunks + 3]), "output_tokens_client": n_chunks,
            "prompt_tokens": rng.choice([None, 64]), "prompt_tokens_client": 60,
        })
    return out


def same(a, b):
    if b is None:
        return math.isnan(a)
    return math.isclose(a, b, rel_tol=0, abs_tol=1e-3)


def test_table_columns_equal_the_per_record_definitions():
    recs = random_records(400)
    for source in (recs, pd.DataFrame(recs)):
        table = request_table(source)
        for name, fn in DEFINITIONS.items():
            for i, r in enumerate(recs):
                assert same(table.values[name][i], fn(r)), (name, i)
        assert list(table.ok) == [r["status"] == "ok" for r in recs]


def assert_same_table(a: RequestTable, b: RequestTable) -> None:
    """Every column of two tables equal, NaN matching NaN (exactly: no tolerance)."""
    def eq(x, y, what):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape, what
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), what
        else:
            assert x.tolist() == y.tolist(), what

    for name in ("step", "status", "ok", "output_tokens", "prompt_tokens", "gaps", "gap_row", "token_gaps",
                 "usage_missing"):
        eq(getattr(a, name), getattr(b, name), name)
    for group in ("times", "values"):
        assert getattr(a, group).keys() == getattr(b, group).keys(), group
        for name in getattr(a, group):
            eq(getattr(a, group)[name], getattr(b, group)[name], f"{group}.{name}")


def test_the_column_wise_table_of_a_store_frame_equals_the_per_record_one():
    """A frame with integer dtypes (as store.queries.get_requests returns) is evaluated over
    whole columns; it must give exactly what the per-record definitions give."""
    recs = random_records(600, seed=5)
    for i, r in enumerate(recs[::7]):  # packed tokens, usage without a client count, no status
        r["output_tokens"] = 3 * len(r["chunk_ns"]) + 1
        r["output_tokens_client"] = None if i % 2 else 0
        r["status"] = None if i % 3 == 0 else r["status"]
    frame = pd.DataFrame(recs).astype({k: "Int64" for k in INTEGER_FIELDS})
    assert_same_table(request_table(frame), request_table(recs))
    narrow = frame.drop(columns=["t_sched_ns", "prompt_tokens_client", "chunk_ns"])
    assert_same_table(request_table(narrow), request_table(narrow.to_dict("records")))
    assert_same_table(request_table(frame.iloc[:0]), request_table([]))


def test_itl_gaps_keep_requests_apart():
    gaps, rows = itl_gaps([[10, 15, 30], [], [100], [200, 201]])
    assert gaps.tolist() == [5, 15, 1] and rows.tolist() == [0, 0, 3]
    gaps, rows = itl_gaps([])
    assert gaps.size == 0 and rows.size == 0


def test_mask_checks_equal_the_per_record_checks():
    recs = random_records(400, seed=11)
    table = request_table(recs)
    terms = parse_slo("ttft_p99<=150ms,tpot_p90<=20ms,itl_p99<=30ms,e2e_p50<=500ms,ttft_sched_p99<=200ms")
    for t in terms:
        assert pass_mask(table, t).tolist() == [term_passes(r, t) for r in recs], t
    assert meets_mask(table, terms).tolist() == [meets_slo(r, terms) for r in recs]
    assert np.any(meets_mask(table, terms)) and not np.all(meets_mask(table, terms))
