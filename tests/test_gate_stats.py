"""The gate's statistics (analysis/gate.py, analysis/gate_metrics.py) on plain numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.gate import (
    IMPROVED,
    INCONCLUSIVE,
    NO_CHANGE,
    REGRESSED,
    GateOptions,
    MetricSpec,
    judge,
    judge_metric,
    min_achievable_p,
    overall,
)
from analysis.gate_metrics import CATALOG, DEFAULT_METRICS, apply_thresholds, metric_value, parse_metrics

TTFT = CATALOG["ttft_p50"]
SIX = GateOptions(min_repeats=6)


def noisy(rng: np.random.Generator, center: float, cv: float, n: int = 6) -> list[float]:
    return list(center * (1 + rng.normal(0, cv, n)))


# --- properties ------------------------------------------------------------------------

@pytest.mark.parametrize("cv", [0.001, 0.01, 0.05, 0.3])
def test_identical_samples_never_regress(cv):
    """The same repeats on both sides, in any order, never regress and never improve."""
    rng = np.random.default_rng(7)
    specs = [CATALOG[n] for n in DEFAULT_METRICS]
    for _ in range(30):
        a = noisy(rng, 50.0, cv, int(rng.integers(1, 12)))
        b = list(rng.permutation(a))
        for spec in specs:
            v = judge_metric(spec, a, b, SIX)
            assert v.verdict in (NO_CHANGE, INCONCLUSIVE), (spec.name, v)
            assert v.rel_change == 0 and v.p_value == 1.0


def test_a_clear_shift_is_caught_in_both_directions():
    rng = np.random.default_rng(3)
    for _ in range(50):
        a = noisy(rng, 50.0, 0.01)
        b = [x * 1.2 for x in noisy(rng, 50.0, 0.01)]
        v = judge_metric(TTFT, a, b, SIX)
        assert v.verdict == REGRESSED, v
        assert v.rel_change == pytest.approx(0.2, abs=0.03) and v.ci_low > 0.1
        assert judge_metric(TTFT, b, a, SIX).verdict == IMPROVED


def test_lower_throughput_is_a_regression_higher_an_improvement():
    rng = np.random.default_rng(4)
    a, b = noisy(rng, 100.0, 0.01), noisy(rng, 75.0, 0.01)
    tput = CATALOG["output_tok_s"]
    assert judge_metric(tput, a, b, SIX).verdict == REGRESSED
    assert judge_metric(tput, b, a, SIX).verdict == IMPROVED


def test_a_real_change_below_the_relative_floor_is_no_change():
    """+5% on a 10% floor: significant, but too small to matter."""
    rng = np.random.default_rng(5)
    a, b = noisy(rng, 50.0, 0.005), [x * 1.05 for x in noisy(rng, 50.0, 0.005)]
    v = judge_metric(TTFT, a, b, SIX)
    assert v.p_value < 0.05 and v.verdict == NO_CHANGE, v


def test_a_change_must_pass_the_absolute_floor_too():
    """+50% of 0.4 ms is 0.2 ms: below TTFT's 1 ms absolute floor."""
    a, b = [0.40, 0.41, 0.39, 0.40, 0.42, 0.40], [0.60, 0.61, 0.59, 0.62, 0.60, 0.61]
    v = judge_metric(TTFT, a, b, SIX)
    assert v.p_value < 0.05 and v.rel_change > 0.4 and v.verdict == NO_CHANGE, v
    assert judge_metric(MetricSpec("x", abs_floor=0.1), a, b, SIX).verdict == REGRESSED


def test_a_change_only_just_past_the_floor_is_not_yet_a_regression():
    """Median +12% and p < 0.05, but the interval still reaches below +10%: the change may
    be a real +5% with noise on top, so the verdict waits for more evidence."""
    a, b = [50, 51, 49, 50, 52, 48], [55, 60, 54, 58, 53, 57]
    v = judge_metric(TTFT, a, b, SIX)
    assert v.p_value < 0.05 and v.rel_change > 0.10 and v.ci_low < 0.10
    assert v.verdict == INCONCLUSIVE, v


def test_too_noisy_is_inconclusive():
    a = [50, 20, 90, 45, 70, 30]
    b = [55, 25, 95, 40, 80, 35]
    v = judge_metric(TTFT, a, b, SIX)
    assert v.verdict == INCONCLUSIVE and "too noisy" in v.reason, v


# --- too few repeats and untrusted runs --------------------------------------------------

def test_min_achievable_p_is_exact():
    assert min_achievable_p(3, 3) == pytest.approx(2 / 20)
    assert min_achievable_p(4, 4) == pytest.approx(2 / 70)
    assert min_achievable_p(6, 6) == pytest.approx(2 / 924)
    assert min_achievable_p(0, 6) == 1.0


def test_too_few_repeats_is_inconclusive_even_for_a_big_shift():
    a, b = [50.0, 50.1, 49.9], [80.0, 80.1, 79.9]
    v = judge_metric(TTFT, a, b, GateOptions(min_repeats=3))
    assert v.verdict == INCONCLUSIVE and "reach p" in v.reason  # 3 v 3 cannot reach 0.05
    v = judge_metric(TTFT, a, b, SIX)
    assert v.verdict == INCONCLUSIVE and "need 6" in v.reason
    assert v.rel_change == pytest.approx(0.6, abs=0.01)  # the numbers are still reported
    assert judge_metric(TTFT, [], b, SIX).verdict == INCONCLUSIVE


def test_missing_values_are_dropped_not_zeroed():
    a = [50.0, None, 50.2, 49.8, 50.1, 49.9, 50.0]
    v = judge_metric(TTFT, a, [50.0] * 6, SIX)
    assert v.baseline == [50.0, 50.2, 49.8, 50.1, 49.9, 50.0]


def test_an_untrusted_repeat_makes_every_metric_inconclusive():
    rng = np.random.default_rng(6)
    a = {"ttft_p50": noisy(rng, 50, 0.01)}
    b = {"ttft_p50": noisy(rng, 60, 0.01)}
    assert judge([TTFT], a, b, SIX).verdict == REGRESSED
    v = judge([TTFT], a, b, SIX, untrusted=["candidate run r1 failed its self-check: client CPU 95%"])
    assert v.verdict == INCONCLUSIVE and v.metrics[0].verdict == INCONCLUSIVE
    assert "regressed otherwise" in v.metrics[0].reason and v.reasons


def test_overall_verdict_precedence():
    assert overall([NO_CHANGE, IMPROVED]) == NO_CHANGE
    assert overall([NO_CHANGE, INCONCLUSIVE, IMPROVED]) == INCONCLUSIVE
    assert overall([INCONCLUSIVE, REGRESSED, NO_CHANGE]) == REGRESSED


# --- error rate from zero ------------------------------------------------------------------

def test_error_rate_from_zero_uses_the_absolute_floor():
    err = CATALOG["error_rate"]
    zero = [0.0] * 6
    v = judge_metric(err, zero, [0.05, 0.04, 0.06, 0.05, 0.05, 0.04], SIX)
    assert v.verdict == REGRESSED and math.isinf(v.rel_change), v
    assert judge_metric(err, zero, [0.002, 0.0, 0.004, 0.0, 0.002, 0.0], SIX).verdict == NO_CHANGE
    assert judge_metric(err, zero, zero, SIX).verdict == NO_CHANGE


# --- the metric catalog ----------------------------------------------------------------------

def test_metric_values_come_from_the_run_summary():
    s = {"ttft_ms": {"p50": 51.0, "p99": 55.5}, "tpot_ms": {"p50": None}, "output_tok_s": 250.0,
         "error_rate": 0.0}
    assert metric_value(s, "ttft_p99") == 55.5
    assert metric_value(s, "tpot_p50") is None
    assert metric_value(s, "e2e_p99") is None
    assert metric_value(s, "output_tok_s") == 250.0 and metric_value(s, "error_rate") == 0.0


def test_parse_metrics_and_thresholds():
    assert [s.name for s in parse_metrics(None)] == list(DEFAULT_METRICS)
    specs = apply_thresholds(parse_metrics("ttft_p99,error_rate"), ["ttft_p99=5%:2", "error_rate=0%:0.02"])
    assert (specs[0].rel_floor, specs[0].abs_floor) == (0.05, 2.0)
    assert specs[1].abs_floor == 0.02
    assert apply_thresholds(specs, ["ttft_p99=20%"])[0].abs_floor == 2.0  # only the relative one
    with pytest.raises(ValueError, match="unknown gate metric"):
        parse_metrics("ttft_p42")
    with pytest.raises(ValueError, match="METRIC=REL%"):
        apply_thresholds(specs, ["ttft_p99=5"])
    with pytest.raises(ValueError, match="not among the gated"):
        apply_thresholds(specs, ["tpot_p50=5%"])
