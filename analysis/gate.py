"""The regression gate's statistics: per-repeat aggregates of two sides in, a verdict out.

Each side is N repeats of the same load; each repeat contributes one number per metric
(e.g. its TTFT p99). Per metric, with A = baseline repeats, B = candidate repeats:

- test: two-sided Mann-Whitney U on A vs B (scipy.stats.mannwhitneyu; exact for small
  samples without ties). It assumes nothing about the shape of the repeats' spread.
- effect: relative change = median(B) / median(A) - 1, absolute change = median(B) -
  median(A), signed as measured (+ : the value went up; whether that is worse depends on
  the metric's `higher_is_better`).
- intervals: a percentile bootstrap (seeded, `n_boot` resamples of each side on its own)
  of the relative and of the absolute change, at confidence 1 - 2 alpha (90% for alpha
  0.05): the interval of a TOST equivalence test, which at level alpha declares "no
  change" when that interval lies within the margin.
- a change matters only when it exceeds the metric's relative floor AND its absolute
  floor (asv's "factor" plus a minimum in the metric's own unit: +50% of 0.2 ms is noise).

Verdict per metric, in this order:
  inconclusive  fewer than `min_repeats` on either side, or so few that no outcome could
                reach alpha (the smallest exact two-sided p is 2 / C(n+m, n)), or a failed
                self-check on either side (the client's numbers cannot be trusted);
  regressed     p < alpha, and the whole interval lies past both floors on the worse side
                (a minimum-effect test: the change is confidently larger than the floor,
                so a real but small change, with noise on top, is not called a regression);
  improved      the same on the better side;
  no change     equivalence (TOST at alpha): the relative interval lies within +-relative
                floor, or the absolute one within +-absolute floor (no change there
                could pass both floors);
  inconclusive  otherwise: too noisy to rule a change past the floor in or out.

The gate's verdict: regressed if any metric regressed, else inconclusive if any metric
is, else no change (improved metrics are reported, and do not fail the gate).
Pure: no I/O, no clocks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np
from scipy.stats import mannwhitneyu

REGRESSED, NO_CHANGE, INCONCLUSIVE, IMPROVED = "regressed", "no change", "inconclusive", "improved"


@dataclass(frozen=True)
class MetricSpec:
    """One gated metric: its name, unit, direction and the smallest change that matters."""

    name: str
    unit: str = "ms"
    higher_is_better: bool = False
    rel_floor: float = 0.10  # fraction of the baseline median
    abs_floor: float = 0.0  # in `unit`


@dataclass(frozen=True)
class GateOptions:
    alpha: float = 0.05
    min_repeats: int = 6
    n_boot: int = 2000
    seed: int = 0


@dataclass
class MetricVerdict:
    name: str
    unit: str
    verdict: str
    reason: str
    baseline: list[float]
    candidate: list[float]
    baseline_median: float | None = None
    candidate_median: float | None = None
    rel_change: float | None = None  # signed as measured: + means the value went up
    abs_change: float | None = None
    ci_low: float | None = None  # interval of rel_change
    ci_high: float | None = None
    abs_ci_low: float | None = None  # interval of abs_change
    abs_ci_high: float | None = None
    p_value: float | None = None
    rel_floor: float = 0.0
    abs_floor: float = 0.0
    higher_is_better: bool = False


@dataclass
class GateVerdict:
    verdict: str
    metrics: list[MetricVerdict]
    reasons: list[str] = field(default_factory=list)
    alpha: float = 0.05

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "reasons": self.reasons, "alpha": self.alpha,
                "metrics": [asdict(m) for m in self.metrics]}


def _clean(values: Sequence[float | None]) -> np.ndarray:
    arr = np.array([v for v in values if v is not None], dtype=np.float64)
    return arr[np.isfinite(arr)]


def min_achievable_p(n: int, m: int) -> float:
    """The smallest two-sided exact Mann-Whitney p-value with n and m untied repeats.

    Formula: 2 / C(n + m, n) (every B above every A, or below), capped at 1
    """
    if n == 0 or m == 0:
        return 1.0
    return min(1.0, float(Fraction(2, math.comb(n + m, n))))  # exact: the binomial outgrows floats


def rel_change(a: np.ndarray, b: np.ndarray) -> float:
    """median(b) / median(a) - 1; +inf (or 0 when both are 0) for a zero baseline.

    Formula: median(B) / median(A) - 1
    """
    ma, mb = float(np.median(a)), float(np.median(b))
    if ma == 0:
        return 0.0 if mb == 0 else math.copysign(math.inf, mb)
    return mb / ma - 1.0


def bootstrap_intervals(a: np.ndarray, b: np.ndarray, confidence: float, n_boot: int,
                        seed: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Percentile bootstrap intervals of the relative and the absolute change of the
    medians, resampling each side on its own: ((rel_low, rel_high), (abs_low, abs_high))."""
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, (n_boot, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, (n_boot, b.size))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(ma == 0, np.where(mb == 0, 0.0, np.inf), mb / ma - 1.0)
    tail = (1.0 - confidence) / 2 * 100
    rel = np.percentile(ratios, [tail, 100 - tail], method="inverted_cdf")  # no inf - inf
    ab = np.percentile(mb - ma, [tail, 100 - tail], method="inverted_cdf")
    return (float(rel[0]), float(rel[1])), (float(ab[0]), float(ab[1]))


def mann_whitney_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when every value on both sides is the same."""
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0
    return float(mannwhitneyu(b, a, alternative="two-sided").pvalue)


def _past_floors(v: MetricVerdict, spec: MetricSpec) -> int:
    """+1 when the whole interval lies above both floors (a rise that matters, with
    confidence 1 - alpha, one-sided), -1 when wholly below minus both, 0 otherwise."""
    lo, hi, abs_lo, abs_hi = (_nan(x) for x in (v.ci_low, v.ci_high, v.abs_ci_low, v.abs_ci_high))
    if lo > spec.rel_floor and abs_lo > spec.abs_floor:
        return 1
    if hi < -spec.rel_floor and abs_hi < -spec.abs_floor:
        return -1
    return 0


def _nan(x: float | None) -> float:
    """None (not measured) compares false with everything, as NaN does."""
    return math.nan if x is None else x


def _span(v: MetricVerdict) -> str:
    return f"interval [{pct_text(v.ci_low)}, {pct_text(v.ci_high)}]"


def pct_text(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:+.1%}" if math.isfinite(x) else ("+inf" if x > 0 else "-inf")


def _judge(v: MetricVerdict, spec: MetricSpec, opts: GateOptions) -> MetricVerdict:
    direction = _past_floors(v, spec)
    if _nan(v.p_value) < opts.alpha and direction:
        worse = direction > 0 if not spec.higher_is_better else direction < 0
        v.verdict = REGRESSED if worse else IMPROVED
        v.reason = (f"p={v.p_value:.3g} < {opts.alpha}, change {pct_text(v.rel_change)}, {_span(v)} "
                    f"wholly past the floors")
        return v
    # Equivalence: a change that cannot pass either floor anywhere in its interval does not matter.
    lo, hi, abs_lo, abs_hi = (_nan(x) for x in (v.ci_low, v.ci_high, v.abs_ci_low, v.abs_ci_high))
    if max(abs(lo), abs(hi)) <= spec.rel_floor or max(abs(abs_lo), abs(abs_hi)) <= spec.abs_floor:
        v.verdict, v.reason = NO_CHANGE, f"{_span(v)} within the floors"
    else:
        v.verdict = INCONCLUSIVE
        v.reason = f"too noisy: {_span(v)} reaches past +-{spec.rel_floor:.0%} (p={v.p_value:.3g})"
    return v


def judge_metric(spec: MetricSpec, baseline: Sequence[float | None], candidate: Sequence[float | None],
                 opts: GateOptions = GateOptions()) -> MetricVerdict:
    """The verdict on one metric from its per-repeat values on each side."""
    a, b = _clean(baseline), _clean(candidate)
    v = MetricVerdict(spec.name, spec.unit, INCONCLUSIVE, "", a.tolist(), b.tolist(),
                      rel_floor=spec.rel_floor, abs_floor=spec.abs_floor,
                      higher_is_better=spec.higher_is_better)
    if a.size == 0 or b.size == 0:
        v.reason = f"not measured: {a.size} baseline, {b.size} candidate values"
        return v
    v.baseline_median, v.candidate_median = float(np.median(a)), float(np.median(b))
    v.rel_change, v.abs_change = rel_change(a, b), v.candidate_median - v.baseline_median
    (v.ci_low, v.ci_high), (v.abs_ci_low, v.abs_ci_high) = bootstrap_intervals(
        a, b, 1 - 2 * opts.alpha, opts.n_boot, opts.seed)
    v.p_value = mann_whitney_p(a, b)
    if min(a.size, b.size) < opts.min_repeats:
        v.reason = f"too few repeats: {a.size} baseline, {b.size} candidate (need {opts.min_repeats})"
        return v
    if min_achievable_p(a.size, b.size) >= opts.alpha:
        v.reason = f"too few repeats to reach p < {opts.alpha}: {a.size} baseline, {b.size} candidate"
        return v
    return _judge(v, spec, opts)


def overall(verdicts: Sequence[str]) -> str:
    """regressed if any is, else inconclusive if any is, else no change."""
    if REGRESSED in verdicts:
        return REGRESSED
    if INCONCLUSIVE in verdicts:
        return INCONCLUSIVE
    return NO_CHANGE


def judge(specs: Sequence[MetricSpec], baseline: Mapping[str, Sequence[float | None]],
          candidate: Mapping[str, Sequence[float | None]], opts: GateOptions = GateOptions(),
          untrusted: Sequence[str] = ()) -> GateVerdict:
    """The gate: every metric judged, and the overall verdict.

    `untrusted`: one reason per repeat whose run cannot be trusted (failed self-check, not
    completed), on either side; any makes every metric inconclusive.
    """
    metrics = [judge_metric(s, baseline.get(s.name, ()), candidate.get(s.name, ()), opts) for s in specs]
    if untrusted:
        for m in metrics:
            if m.verdict != INCONCLUSIVE:
                m.verdict, m.reason = INCONCLUSIVE, f"a repeat cannot be trusted ({m.verdict} otherwise)"
    return GateVerdict(overall([m.verdict for m in metrics]), metrics, list(untrusted), opts.alpha)
