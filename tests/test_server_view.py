"""The server's view of a run: cache outcomes, tiers and refusals, the server's timings."""

import json

import numpy as np
import pandas as pd

from analysis.server_view import server_view
from analysis.summary import summarize_run


def served(cache="miss", tier=None, degraded=None, **t):
    s = {"queue_ms": 1.0, "prefill_ms": 10.0, "decode_ms": 100.0, "batch_size": 2, "batch_mean": 1.5,
         "cache": cache, **t}
    if tier:
        s.update(tier=tier, degraded=degraded)
    return {"server": s, "status": "ok", "http_status": 200, "error": None}


def refused(code, tier, reason):
    body = {"error": {"message": "no", "type": "invalid_request_error", "code": reason, "tier": tier, "reason": reason}}
    return {"server": None, "status": "http_error", "http_status": code, "error": json.dumps(body)}


def test_outcomes_tiers_and_refusals_are_counted():
    recs = [served("miss", "high"), served("exact", "low", queue_ms=0.0, prefill_ms=0.0, decode_ms=0.0),
            served("semantic", "low", embed_ms=30.0, decode_ms=0.0), served("miss", "low", "max_tokens", embed_ms=20.0),
            refused(429, "low", "rate_limit_exceeded"), refused(503, "low", "overloaded"),
            refused(401, None, "invalid_api_key"),
            {"server": None, "status": "conn_error", "http_status": None, "error": "refused"}]
    v = server_view(recs)
    assert v["responses"] == 4
    assert v["cache"] == {"miss": 2, "exact": 1, "semantic": 1}
    assert v["tiers"] == {"high": {"served": 1, "refused": {}},
                          "low": {"served": 3, "refused": {"rate_limit_exceeded": 1, "overloaded": 1}},
                          "-": {"served": 0, "refused": {"invalid_api_key": 1}}}
    assert v["degraded"] == {"max_tokens": 1}
    # timings only over requests that generated (the two misses), not the hits' zeros
    assert v["decode_ms"] == {"p50": 100.0, "p99": 100.0, "mean": 100.0} and v["batch_mean"] == 1.5
    assert v["embed_ms_p50"] == 25.0 and "prefix_tokens_mean" not in v


def test_nothing_from_the_server_is_none_and_a_mask_selects_rows():
    assert server_view([{"server": None, "status": "ok", "http_status": 200, "error": None}]) is None
    recs = [served("miss"), served("exact")]
    assert server_view(recs, np.array([False, True]))["cache"] == {"exact": 1}
    frame = pd.DataFrame([{**served("prefix", prefix_tokens=448)}, {**served("prefix", prefix_tokens=432)}])
    assert server_view(frame)["prefix_tokens_mean"] == 440.0


def test_the_run_summary_carries_the_servers_view_of_its_measured_requests():
    t0 = 10**12
    reqs = [{**served("miss" if i % 2 else "exact"), "step": 0, "t_sched_ns": None, "t_send_ns": t0 + i * 10**8,
             "t_first_ns": t0 + i * 10**8 + 10**7, "t_last_ns": t0 + i * 10**8 + 2 * 10**7,
             "chunk_ns": [t0 + i * 10**8 + 10**7, t0 + i * 10**8 + 2 * 10**7], "output_tokens": 2,
             "output_tokens_client": 2, "prompt_tokens": 4, "prompt_tokens_client": 4} for i in range(20)]
    step = {"step": 0, "mode": "closed", "users": 1, "duration_s": 2.0, "warmup_s": 0.0, "t_start_ns": t0,
            "t_end_ns": t0 + 2 * 10**9}
    s = summarize_run({"run_id": "r", "status": "completed"}, [step], reqs)
    assert s["server"]["responses"] == s["measured_requests"]
    assert sum(s["server"]["cache"].values()) == s["measured_requests"]


def test_a_frame_with_a_mask_gives_what_its_records_give():
    """A frame skips rows that carry neither the server's object nor a refusal before reading
    them: the same view as the records, with and without a mask."""
    recs = [served("miss", "high"), refused(429, "low", "rate_limit_exceeded"),
            {"server": None, "status": "ok", "http_status": 200, "error": None},
            served("exact", "low", queue_ms=0.0), refused(401, None, "invalid_api_key"),
            {"server": None, "status": "conn_error", "http_status": None, "error": "refused"},
            served("miss", "low", "max_tokens", embed_ms=20.0)] * 3
    frame = pd.DataFrame(recs).astype({"http_status": "Int64"})
    mask = np.arange(len(recs)) % 4 != 1
    assert server_view(frame) == server_view(recs)
    assert server_view(frame, mask) == server_view(recs, mask)
    assert server_view(frame.iloc[[2, 5]]) is None
