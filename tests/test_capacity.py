"""Capacity search decisions and intervals, with plain numbers (analysis/capacity.py)."""

import math

import numpy as np
import pytest

from analysis.capacity import (
    Probe, bound_message, bracket, capacity, crossing, estimate_repeat, interval, margin, next_load,
)


def search(curve, low=0.5, high=64.0, rel_tol=0.05, max_probes=12, hint=None):
    """Runs one repeat's search against margin = curve(load); returns its probes."""
    probes = []
    while (load := next_load(probes, low, high, rel_tol, max_probes, hint)) is not None:
        m = curve(load)
        probes.append(Probe(load, m <= 1, m, tokens_per_req=10.0))
    return probes


def queue_like(capacity_at):
    # a margin that grows slowly, then sharply near saturation (like a queue's p99 wait)
    sat = capacity_at * 1.25
    return lambda r: math.inf if r >= sat else 0.2 + 0.8 * (capacity_at / sat) * (sat - capacity_at) / (sat - r) / (capacity_at / sat)


@pytest.mark.parametrize("true_capacity", [0.8, 3.0, 11.0, 47.0])
def test_search_brackets_the_crossing_within_the_tolerance_in_few_probes(true_capacity):
    curve = queue_like(true_capacity)
    assert curve(true_capacity) == pytest.approx(1.0)
    probes = search(curve)
    b = bracket(probes)
    assert b.lo.load <= true_capacity <= b.hi.load
    assert b.hi.load / b.lo.load - 1 <= 0.05
    assert len(probes) <= 9
    est = estimate_repeat(probes)
    assert est.value == pytest.approx(true_capacity, rel=0.05)
    assert est.output_tok_s == pytest.approx(est.value * 10.0)


@pytest.mark.parametrize("cliff, flat", [(20.0, 0.99), (1.5, 1.02)])
def test_a_margin_that_does_not_follow_the_load_is_left_by_galloping(cliff, flat):
    # A p99 over a short window can sit near the line whatever the load, up to a cliff: 1 / margin
    # would step by rel_tol each probe (from 5.66 to 20 at 1% a step: 127 probes).
    curve = (lambda r: flat if r < cliff else 5.0) if flat < 1 else (lambda r: flat if r > cliff else 0.5)
    probes = search(curve, rel_tol=0.01, max_probes=40)
    b = bracket(probes)
    assert b.lo is not None and b.hi is not None and b.lo.load <= cliff <= b.hi.load
    assert b.hi.load / b.lo.load - 1 <= 0.01
    assert len(probes) <= 20, [round(p.load, 3) for p in probes]


def test_a_hint_near_the_answer_saves_probes():
    curve = queue_like(6.0)
    assert len(search(curve, hint=6.1)) < len(search(curve))


def test_capacity_is_never_reported_outside_the_loads_measured():
    above = search(lambda r: 0.1, low=1, high=8)
    assert max(p.load for p in above) == 8 and all(p.slo_met for p in above)
    assert estimate_repeat(above).bound == "above" and estimate_repeat(above).value is None
    below = search(lambda r: 5.0, low=1, high=8)
    assert min(p.load for p in below) == 1
    assert estimate_repeat(below).bound == "below"
    cap = capacity([estimate_repeat(above), estimate_repeat(above)])
    assert cap["req_s"]["value"] is None and cap["req_s"]["bound"] == "above"
    assert "above" in bound_message("above", [estimate_repeat(above)]) and "8" in bound_message(
        "above", [estimate_repeat(above)])


def test_noise_that_puts_a_pass_above_a_fail_is_ignored():
    probes = [Probe(4, True, 0.5), Probe(8, False, 3.0), Probe(10, True, 0.9), Probe(6, False, 1.2)]
    b = bracket(probes)
    assert (b.lo.load, b.hi.load) == (4, 6)


def test_crossing_interpolates_log_margin_and_falls_back_to_the_geometric_middle():
    lo, hi = Probe(4, True, math.exp(-1)), Probe(6, False, math.exp(1))
    assert crossing(lo, hi) == pytest.approx(5.0)
    assert crossing(lo, Probe(6, False, math.inf)) == pytest.approx(math.sqrt(24))
    assert crossing(Probe(4, True, None), hi) == pytest.approx(math.sqrt(24))


def test_margin_is_the_worst_term_and_errors_make_it_infinite():
    assert margin([{"value_ms": 100.0, "met": True}, {"value_ms": 60.0, "met": False}], [200, 50]) == 1.2
    assert margin([{"value_ms": None, "met": False}], [200]) == math.inf
    assert margin([], []) is None


def test_interval_is_students_t_for_few_repeats():
    iv = interval([9.0, 10.0, 11.0])
    assert iv["value"] == 10.0 and iv["method"] == "t"
    assert iv["ci_high"] - 10.0 == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)
    assert interval([5.0])["ci_low"] is None and interval([5.0])["value"] == 5.0


def test_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    for r in (3, 10):
        hits = 0
        for _ in range(400):
            iv = interval(rng.normal(20.0, 2.0, r).tolist())
            hits += iv["ci_low"] <= 20.0 <= iv["ci_high"]
        assert hits / 400 > (0.9 if r == 3 else 0.88), r
    assert interval(rng.normal(0, 1, 10).tolist())["method"] == "bootstrap"


def test_closed_loop_capacity_interpolates_the_measured_throughput():
    probes = [Probe(4, True, 0.5, req_s=8.0, output_tok_s=80.0), Probe(8, False, 2.0, req_s=12.0, output_tok_s=120.0)]
    est = estimate_repeat(probes, open_loop=False)
    assert est.value == pytest.approx(6.0)  # log 0.5 .. log 2: halfway
    assert est.req_s == pytest.approx(10.0) and est.output_tok_s == pytest.approx(100.0)
