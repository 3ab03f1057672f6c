"""The load generator's self-check: thresholds on hand-built records, storage, a real replay."""

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analysis.selfcheck import self_check
from loadtest.traces import read_trace
from servelab.render import shown_status
from store import add_step, create_run, finish_run, ingest_step, queries, runs, spool_dir
from store.ingest import Spool, client_figures

MS = 1_000_000
ROOT = Path(__file__).resolve().parents[1]
AZURE = ROOT / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv"


def rec(i: int, lag_ms: float = 0.5, out: int = 8, out_client: int = 8, prompt: int = 32,
        prompt_client: int = 32, status: str = "ok", open_loop: bool = True) -> dict:
    t_sched = 10**9 + i * 10 * MS
    return {"t_sched_ns": t_sched if open_loop else None, "t_send_ns": t_sched + round(lag_ms * MS),
            "status": status, "output_tokens": out, "output_tokens_client": out_client,
            "prompt_tokens": prompt, "prompt_tokens_client": prompt_client}


def open_step(n: int, cpu: float = 30.0) -> dict:
    return {"step": 0, "mode": "open", "client_cpu_pct": cpu, "scheduled": n, "capped": 0}


def test_a_client_that_kept_up_passes():
    c = self_check([rec(i) for i in range(200)], [open_step(200)], exact_prompt=True)
    assert c["passed"] is True and c["reasons"] == []
    assert c["schedule_lag_p50_ms"] == pytest.approx(0.5) and c["schedule_lag_p99_ms"] == pytest.approx(0.5)
    assert c["achieved_over_requested"] == 1.0 and c["usage_vs_client_token_mismatch_frac"] == 0.0
    assert c["client_cpu_pct_max"] == 30.0


def test_saturated_client_cpu_fails():
    c = self_check([rec(i) for i in range(10)], [open_step(10, cpu=95.0)])
    assert not c["passed"] and len(c["reasons"]) == 1 and "client CPU 95%" in c["reasons"][0]
    assert self_check([rec(i) for i in range(10)], [open_step(10, cpu=90.0)])["passed"]


def test_schedule_lag_p99_over_10_ms_fails():
    records = [rec(i, lag_ms=1.0) for i in range(97)] + [rec(97 + i, lag_ms=50.0) for i in range(3)]
    c = self_check(records, [open_step(100)])
    assert c["schedule_lag_p99_ms"] > 10 and c["schedule_lag_p50_ms"] == pytest.approx(1.0)
    assert c["reasons"] == [f"schedule lag p99 {c['schedule_lag_p99_ms']:.1f} ms > 10 ms"]
    one_late = [rec(i, lag_ms=1.0) for i in range(199)] + [rec(199, lag_ms=50.0)]
    assert self_check(one_late, [open_step(200)])["passed"]  # p99 of 200 is below the one late send


def test_requests_cancelled_before_sending_do_not_count_as_lag():
    records = [rec(i) for i in range(50)] + [rec(50, lag_ms=5000, status="cancelled")]
    assert self_check(records, [open_step(51)])["schedule_lag_p99_ms"] == pytest.approx(0.5)


@pytest.mark.parametrize(("sent", "scheduled", "passed"), [(100, 100, True), (995, 1000, True), (98, 100, False)])
def test_achieved_over_requested_tolerates_one_percent(sent, scheduled, passed):
    c = self_check([rec(i) for i in range(sent)], [open_step(scheduled)])
    assert c["achieved_over_requested"] == pytest.approx(sent / scheduled)
    assert c["passed"] is passed
    if not passed:
        assert "achieved/requested rate 0.980" in c["reasons"][0]


def test_token_mismatch_over_one_percent_fails_and_prompt_counts_only_when_exact():
    records = [rec(i) for i in range(98)] + [rec(98, out_client=7), rec(99, out_client=9)]
    c = self_check(records, [open_step(100)])
    assert c["usage_vs_client_token_mismatch_frac"] == pytest.approx(0.02) and not c["passed"]
    assert "2.0% of requests: server usage != client token count" in c["reasons"][0]
    prompt_off = [rec(i) for i in range(90)] + [rec(90 + i, prompt=40) for i in range(10)]
    assert self_check(prompt_off, [open_step(100)], exact_prompt=False)["passed"]
    assert self_check(prompt_off, [open_step(100)], exact_prompt=True)["usage_vs_client_token_mismatch_frac"] == 0.1


def test_whole_responses_have_no_client_count_and_are_not_judged():
    """Non-streaming and job records carry `output_tokens_client` None: nothing to compare."""
    whole = [{**rec(i), "output_tokens_client": None} for i in range(100)]
    c = self_check(whole, [open_step(100)])
    assert c["usage_vs_client_token_mismatch_frac"] is None and c["passed"]
    mixed = whole[:50] + [rec(50 + i, out_client=7 if i == 0 else 8) for i in range(50)]
    assert self_check(mixed, [open_step(100)])["usage_vs_client_token_mismatch_frac"] == pytest.approx(0.02)


def test_closed_loop_has_no_lag_or_rate_to_judge():
    records = [rec(i, open_loop=False) for i in range(20)]
    c = self_check(records, [{"step": 0, "mode": "closed", "client_cpu_pct": 12.0, "scheduled": None}])
    assert c["schedule_lag_p99_ms"] is None and c["achieved_over_requested"] is None and c["passed"]


def test_several_failures_give_several_reasons():
    records = [rec(i, lag_ms=20, out_client=1) for i in range(50)]
    c = self_check(records, [open_step(100, cpu=99)])
    assert len(c["reasons"]) == 4 and not c["passed"]


def test_client_figures_come_from_the_producers_meta_events():
    spool = Spool(meta={
        "w0": [{"event": "start", "t_ns": 1},
               {"event": "stop", "t_ns": 2, "cpu_pct": 10.0, "stall_max_ms": 1.5, "capped": 3},
               {"event": "end", "t_ns": 3, "cpu_pct": 40.0, "stall_max_ms": 7.25, "scheduled": 100}],
        "w1": [{"event": "start", "t_ns": 1}, {"event": "stop", "t_ns": 2, "cpu_pct": 55.0, "capped": 1}],
    })
    assert client_figures(spool) == {"client_cpu_pct": 55.0, "client_stall_max_ms": 7.25, "scheduled": 100,
                                     "capped": 4}
    spool.meta["w1"][1]["cpu_pct"] = 5.0  # w0's stop (10) and end (40): the larger counts
    assert client_figures(spool)["client_cpu_pct"] == 40.0
    assert client_figures(Spool()) == {"client_cpu_pct": None, "client_stall_max_ms": None, "scheduled": None,
                                       "capped": None}


def test_a_client_stall_is_reported_but_never_fails_the_run():
    steps = [{**open_step(10), "client_stall_max_ms": 3.0}, {**open_step(10), "step": 1, "client_stall_max_ms": 250.0}]
    c = self_check([rec(i) for i in range(20)], steps)
    assert c["client_stall_max_ms"] == 250.0
    assert c["passed"] is True
    assert self_check([rec(i) for i in range(10)], [open_step(10)])["client_stall_max_ms"] is None


def test_the_verdict_is_stored_and_shown_with_the_run(tmp_path):
    path = tmp_path / "s.duckdb"
    create_run(path, "r1", {"load": {"mode": "open", "rate": 5}}, "builtin", None, {}, "0")
    add_step(path, "r1", 0, "open", None, 5.0, 1.0, 0.1)
    (spool_dir(path, "r1", 0) / "meta-w0.jsonl").write_text(
        json.dumps({"event": "start", "t_ns": 1, "wall_ns": 1}) + "\n"
        + json.dumps({"event": "end", "t_ns": 9, "cpu_pct": 97.5, "stall_max_ms": 2.5, "scheduled": 5}) + "\n")
    ingest_step(path, "r1", 0)
    finish_run(path, "r1", "completed")
    step = queries.get_steps(path, "r1")[0]
    assert (step["client_cpu_pct"], step["client_stall_max_ms"], step["scheduled"]) == (97.5, 2.5, 5)
    check = self_check([], [step])
    runs.set_self_check(path, "r1", check)
    assert queries.get_run(path, "r1")["self_check"]["reasons"] == check["reasons"] != []
    listed = queries.list_runs(path)[0]
    assert listed["self_check"] == "failed"
    assert shown_status(listed["status"], listed["self_check"]) == "completed (self-check failed)"
    assert shown_status("completed", "passed") == shown_status("completed", None) == "completed"


@pytest.mark.slow
def test_trace_replay_through_the_cli_against_calibration_mode(cli, tmp_path):
    scale, duration = 20.0, 2.0
    res = cli("run", "--calibration", "--calib-ttft-ms", "5", "--calib-itl-ms", "1", "--trace", str(AZURE),
              "--time-scale", str(scale), "--duration", str(duration), "--output-cap", "4",
              "--store", "s.duckdb", "--json", timeout=180)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    check = summary["self_check"]
    assert set(check) >= {"client_cpu_pct_max", "schedule_lag_p50_ms", "schedule_lag_p99_ms",
                          "achieved_over_requested", "usage_vs_client_token_mismatch_frac", "passed", "reasons"}
    assert check["usage_vs_client_token_mismatch_frac"] == 0.0
    assert 0 < check["client_cpu_pct_max"] < 100
    assert 0 <= check["client_stall_max_ms"] < 1000  # the stall watch ran in the real worker
    trace = read_trace(AZURE)
    expected = trace.t_s[trace.t_s / scale < duration]
    store = str(tmp_path / "s.duckdb")
    req = queries.get_requests(store, summary["run_id"]).sort_values(["t_sched_ns", "req_id"])
    t0 = queries.get_steps(store, summary["run_id"])[0]["t_start_ns"]
    assert len(req) == len(expected) and (req["status"] == "ok").all()
    offsets = (req["t_sched_ns"].to_numpy(dtype=np.int64) - t0)
    assert np.array_equal(offsets, np.round(expected / scale * 1e9).astype(np.int64))
    n = len(req)
    assert list(req["max_tokens"]) == [min(int(o), 4) for o in trace.output[:n]]
    assert list(req["prompt_tokens"]) == [min(int(p), 2044) for p in trace.prompt[:n]]
    listed = json.loads(cli("runs", "--store", "s.duckdb", "--json").stdout)[0]
    assert listed["self_check"] in ("passed", "failed") and listed["arrival"] == "trace"


def test_outputs_shorter_than_asked_are_recorded_but_do_not_fail():
    recs = [{**rec(i, out=8 if i % 4 else 5, out_client=8 if i % 4 else 5), "max_tokens": 8} for i in range(100)]
    recs.append({**rec(100, status="http_error"), "max_tokens": 8, "output_tokens": 0})  # not judged
    c = self_check(recs, [open_step(101)])
    assert c["output_shorter_than_asked_frac"] == pytest.approx(0.25)
    assert c["passed"]
    assert self_check([rec(i) for i in range(5)], [open_step(5)])["output_shorter_than_asked_frac"] is None


def test_packed_chunks_pass_on_any_server_but_not_where_one_token_per_chunk_is_promised():
    """vLLM under load packs several tokens into a chunk: usage 8 over 3 chunks is normal there."""
    packed = [rec(i, out=8, out_client=3) for i in range(100)]
    c = self_check(packed, [open_step(100)], one_token_per_chunk=False)
    assert c["passed"] and c["usage_vs_client_token_mismatch_frac"] == 0.0
    assert self_check(packed, [open_step(100)], one_token_per_chunk=True)["usage_vs_client_token_mismatch_frac"] == 1.0
    impossible = packed[:98] + [rec(98, out=8, out_client=9), rec(99, out=2, out_client=5)]  # more chunks than tokens
    c = self_check(impossible, [open_step(100)], one_token_per_chunk=False)
    assert c["usage_vs_client_token_mismatch_frac"] == pytest.approx(0.02) and not c["passed"]


def test_mostly_failed_requests_fail_with_the_commonest_error_and_cancelled_ones_do_not_count():
    def failed(i, status="http_error", http=503, error="queue full"):
        return {**rec(i, status=status), "http_status": http, "error": error}

    records = ([rec(i) for i in range(40)] + [failed(40 + i) for i in range(50)]
               + [failed(90 + i, "stream_error", 200, "engine  died") for i in range(10)])
    c = self_check(records, [open_step(100)])
    assert c["error_frac"] == pytest.approx(0.6) and not c["passed"]
    assert c["commonest_error"] == "http_error 503: queue full (50 of 60 failed)"
    assert c["reasons"] == ["60% of requests failed (> 50%); commonest: http_error 503: queue full (50 of 60 failed)"]
    half = [rec(i) for i in range(50)] + [failed(50 + i) for i in range(50)]
    half += [{**rec(100 + i, status="cancelled"), "error": "still in flight"} for i in range(30)]
    c = self_check(half, [open_step(130)])
    assert c["error_frac"] == 0.5 and not any("failed" in r for r in c["reasons"])
    assert self_check([rec(i) for i in range(10)], [open_step(10)])["commonest_error"] is None
    assert self_check([], [open_step(0)])["error_frac"] is None
