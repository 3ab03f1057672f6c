"""SLO strings, the per-request check and the step verdict (errors are misses)."""

from __future__ import annotations

import pytest

from analysis.slo import (
    evaluate_terms, format_term, meets_slo, parse_slo, slo_attainment, slo_met, term_percentile_ms,
)
from servelab.config import SLOTerm

MS = 1_000_000


def rec(ttft_ms, gaps_ms=(10, 10, 10, 10), status="ok"):
    chunks = [ttft_ms * MS]
    for g in gaps_ms:
        chunks.append(chunks[-1] + g * MS)
    return {"status": status, "t_send_ns": 0, "t_sched_ns": None, "t_first_ns": chunks[0],
            "t_last_ns": chunks[-1], "chunk_ns": chunks, "output_tokens": None,
            "output_tokens_client": len(chunks)}


@pytest.mark.parametrize("text, expected", [
    ("ttft_p99<=500ms,tpot_p99<=50ms", [("ttft", 99, 500), ("tpot", 99, 50)]),
    ("e2e_p999<2s", [("e2e", 99.9, 2000)]),
    (" itl_p50 <= 800us ", [("itl", 50, 0.8)]),
    ("ttft_sched_p95<=1.5s", [("ttft_sched", 95, 1500)]),
    ("TTFT_P90<=100MS", [("ttft", 90, 100)]),
    ("tpot_p9999<=20ms", [("tpot", 99.99, 20)]),
    ("", []),
])
def test_parse_good_strings(text, expected):
    terms = parse_slo(text)
    assert [t.metric for t in terms] == [e[0] for e in expected]
    assert [t.percentile for t in terms] == pytest.approx([e[1] for e in expected])
    assert [t.threshold_ms for t in terms] == pytest.approx([e[2] for e in expected])
    assert all(isinstance(t, SLOTerm) for t in terms)


@pytest.mark.parametrize("text, names", [
    ("ttft<=500ms", "'ttft<=500ms'"),
    ("foo_p99<=1ms", "'foo'"),
    ("ttft_p99<=500", "'ttft_p99<=500'"),
    ("ttft_p99>=500ms", "'ttft_p99>=500ms'"),
    ("ttft_p99<=500ms,", "empty SLO term"),
    ("ttft_p99<=500ms,,e2e_p50<=1s", "empty SLO term"),
    ("ttft_p0<=1ms", "p0"),
    ("ttft_p200<=1ms", "p200"),
    ("ttft_p99<=0ms", "'ttft_p99<=0ms'"),
    ("ttft_p99<=500ms;tpot_p99<=5ms", "'ttft_p99<=500ms;tpot_p99<=5ms'"),
])
def test_parse_bad_strings_name_the_part_and_show_an_example(text, names):
    with pytest.raises(ValueError) as err:
        parse_slo(text)
    msg = str(err.value)
    assert names in msg and "ttft_p99<=500ms,tpot_p99<=50ms" in msg and "\n" not in msg


def test_format_round_trips():
    for text in ("ttft_p99<=500ms", "itl_p999<=12.5ms", "e2e_p50<=2000ms", "tpot_p9999<=20ms"):
        (term,) = parse_slo(text)
        assert format_term(term) == text
        assert parse_slo(format_term(term)) == [term]


def test_per_request_check():
    terms = parse_slo("ttft_p99<=100ms,itl_p99<=20ms")
    assert meets_slo(rec(50), terms)
    assert not meets_slo(rec(150), terms)  # ttft too slow
    assert not meets_slo(rec(50, gaps_ms=(10, 30, 10)), terms)  # one stall of 30 ms > 20 ms
    assert not meets_slo(rec(50, status="timeout"), terms)  # errors are misses
    assert not meets_slo(rec(50, status="cancelled"), terms)
    assert meets_slo(rec(50, gaps_ms=()), terms)  # one token: no gaps, itl term does not apply


def test_tpot_term_uses_the_requests_own_tpot():
    terms = parse_slo("tpot_p50<=15ms")
    assert meets_slo(rec(50, gaps_ms=(10, 20)), terms)  # (80-50)/2 = 15
    assert not meets_slo(rec(50, gaps_ms=(10, 22)), terms)  # 16


def test_ttft_sched_term_misses_in_closed_loop():
    assert not meets_slo(rec(10), parse_slo("ttft_sched_p99<=1s"))


def test_step_verdict_counts_errors_as_infinitely_slow():
    measured = [rec(50), rec(50), rec(150), rec(50, status="http_error")]
    (p50,) = parse_slo("ttft_p50<=100ms")
    # values 50, 50, 150, +inf: p50 interpolates halfway between 50 and 150 -> 100
    assert term_percentile_ms(measured, p50) == pytest.approx(100.0)
    assert slo_met(measured, [p50]) is True
    (p99,) = parse_slo("ttft_p99<=1000ms")
    assert term_percentile_ms(measured, p99) == float("inf")
    assert slo_met(measured, [p99]) is False  # all ok requests are fast, but one failed
    assert evaluate_terms(measured, [p50, p99]) == [
        {"term": "ttft_p50<=100ms", "value_ms": pytest.approx(100.0), "met": True},
        {"term": "ttft_p99<=1000ms", "value_ms": None, "met": False}]


def test_attainment_counts_errors_as_misses():
    measured = [rec(50), rec(50), rec(150), rec(50, status="cancelled")]
    assert slo_attainment(measured, parse_slo("ttft_p99<=100ms")) == 0.5
    assert slo_attainment(measured, []) is None
    assert slo_attainment([], parse_slo("ttft_p99<=100ms")) is None
    assert slo_met([], parse_slo("ttft_p99<=100ms")) is None


def test_itl_step_term_uses_each_requests_worst_gap():
    measured = [rec(50, gaps_ms=(10, 10, 10, 10))] * 9 + [rec(50, gaps_ms=(10, 40))]
    (term,) = parse_slo("itl_p50<=20ms")
    assert term_percentile_ms(measured, term) == 10.0
    (term90,) = parse_slo("itl_p90<=20ms")
    assert term_percentile_ms(measured, term90) == pytest.approx(13.0)  # 10 + 0.1 * (40 - 10)
    assert slo_met(measured, [term90]) is True
