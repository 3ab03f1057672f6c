"""Capacity at the SLO: where to probe next, and what the probes say, with an interval.

The question: the highest offered open-loop rate at which a setup's SLO holds. One probe
is one measured step at one load; it yields the step's SLO verdict (analysis/slo.py:
every term's percentile within its threshold, errors entering as +inf) and its margin,
max over terms of percentile / threshold (<= 1 iff the SLO holds). The margin is what
makes a search cheap: it says how far from the line a probe was, not only which side.

One repeat is one independent search with its own seed. It keeps a bracket: lo = the
highest passing load below hi = the lowest failing load. Its next probe is
- no probe yet: the hint (the earlier repeats' estimate) or the geometric middle of
  [low, high];
- only passes: lo times clamp(1 / margin, 1 + rel_tol, 4) (far below the SLO, jump far),
  never above `high`; only fails: hi divided by clamp(sqrt(margin), 1 + rel_tol, 4), never
  below `low`; a hinted repeat steps by at most 1 + 2 rel_tol. When the last step's margin
  did not follow the load (it moved by less than half the step's log-ratio: a p99 over a
  short window that sits near the line whatever the load), the step is at least the last
  one squared (a galloping search), so a flat margin cannot creep by rel_tol to max_probes;
- a bracket: the crossing predicted by interpolating log(margin) linearly in load
  (regula falsi), kept at least rel_tol/2 inside the bracket; when the last two probes moved
  the same end (the curve's convexity makes regula falsi creep), the geometric middle
  instead. Done when hi / lo - 1 <= rel_tol or after `max_probes`.
The repeat's estimate is that interpolated crossing inside its last bracket, so it is
never above the highest load measured nor below the lowest: a repeat that passed at
`high` says "above" and one that failed at `low` says "below", with no value.

Across repeats (analysis of independent estimates c_1..c_R): the value is their mean; the
95% interval is Student's t (mean +- t_{0.975, R-1} s / sqrt(R)) for R < 8, and a BCa
bootstrap of the mean for R >= 8. With 3 repeats a bootstrap cannot cover: the percentile
interval of 3 values lies inside their range, which misses the truth 25% of the time
even before its own narrowing; t is the honest small-sample interval. Pure: numbers in,
numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BOOTSTRAP_FROM = 8  # repeats from which the interval is a BCa bootstrap instead of Student's t
MAX_JUMP = 4.0


@dataclass(frozen=True)
class Probe:
    """One measured point of a search: its load and what it said."""

    load: float  # offered rate (req/s), or users for a closed-loop grid
    slo_met: bool
    margin: float | None = None  # max over terms of value / threshold; inf = errors; None = unknown
    req_s: float | None = None
    output_tok_s: float | None = None
    tokens_per_req: float | None = None  # mean output tokens of its completed requests


@dataclass(frozen=True)
class Bracket:
    lo: Probe | None  # highest pass below hi
    hi: Probe | None  # lowest fail


def margin(evaluated: Sequence[dict[str, Any]], thresholds_ms: Sequence[float]) -> float | None:
    """How far a step was from its SLO: max over terms of percentile / threshold.

    Formula: margin = max_t (value_ms_t / threshold_ms_t); a term with no value but not met
    (errors pushed the percentile past every latency) counts as +inf; None with no terms.
    """
    ratios = []
    for e, thr in zip(evaluated, thresholds_ms):
        if e.get("value_ms") is not None:
            ratios.append(e["value_ms"] / thr)
        elif not e.get("met"):
            ratios.append(math.inf)
    return max(ratios) if ratios else None


def bracket(probes: Sequence[Probe]) -> Bracket:
    """lo = the highest pass below hi = the lowest fail (a pass above a fail is noise, ignored)."""
    fails = [p for p in probes if not p.slo_met]
    hi = min(fails, key=lambda p: p.load) if fails else None
    passes = [p for p in probes if p.slo_met and (hi is None or p.load < hi.load)]
    lo = max(passes, key=lambda p: p.load) if passes else None
    return Bracket(lo, hi)


def _usable(m: float | None) -> bool:
    return m is not None and math.isfinite(m) and m > 0


def crossing(lo: Probe, hi: Probe) -> float:
    """Where log(margin) crosses 0 between a pass and a fail, linear in load; the geometric
    middle when a margin is unusable (errors, or nothing measured).

    Formula: c = lo + (hi - lo) * (-log m_lo) / (log m_hi - log m_lo), within [lo, hi]
    """
    m_lo, m_hi = lo.margin, hi.margin
    if m_lo is not None and m_hi is not None and _usable(m_lo) and _usable(m_hi) and m_hi > m_lo:
        a, b = math.log(m_lo), math.log(m_hi)
        frac = min(1.0, max(0.0, -a / (b - a)))
        return lo.load + (hi.load - lo.load) * frac
    return math.sqrt(lo.load * hi.load)


def _jump(m: float | None, rel_tol: float, hinted: bool) -> float:
    """How far to step out of a one-sided search. A pass's margin says how much room is
    left (jump by 1 / margin); a fail's margin over-states the excess (latency explodes past
    saturation), so step by its square root. A repeat started at the earlier repeats'
    estimate steps by at most 1 + 2 rel_tol: the answer is expected close by."""
    if m is None or not math.isfinite(m) or m <= 0:
        step = MAX_JUMP
    else:
        step = 1.0 / m if m <= 1 else math.sqrt(m)
    step = min(MAX_JUMP, max(1.0 + rel_tol, step))
    return min(step, 1.0 + 2 * rel_tol) if hinted else step


def _gallop(probes: Sequence[Probe], step: float, passes: bool) -> float:
    """`step`, or at least the last step squared when the last two probes went the same way
    (both passes, or both fails) and the margin moved by less than half the step's
    log-ratio: the margin is not following the load, so 1 / margin would creep."""
    if len(probes) < 2:
        return step
    a, b = probes[-2], probes[-1]
    if a.slo_met != passes or b.slo_met != passes or not (_usable(a.margin) and _usable(b.margin)):
        return step
    ratio = b.load / a.load if passes else a.load / b.load
    if ratio <= 1:
        return step
    moved = math.log(b.margin / a.margin) if passes else math.log(a.margin / b.margin)  # type: ignore[operator]
    if moved >= 0.5 * math.log(ratio):
        return step
    return min(MAX_JUMP, max(step, ratio * ratio))


def next_load(probes: Sequence[Probe], low: float, high: float, rel_tol: float, max_probes: int,
              hint: float | None = None) -> float | None:
    """The next load one repeat's search should measure, or None when the repeat is done."""
    if not probes:
        start = hint if hint is not None else math.sqrt(low * high)
        return min(high, max(low, start))
    if len(probes) >= max_probes:
        return None
    b = bracket(probes)
    if b.hi is None and b.lo is not None:  # only passes
        top = max(p.load for p in probes)
        step = _gallop(probes, _jump(b.lo.margin, rel_tol, hint is not None), passes=True)
        return None if top >= high else min(high, b.lo.load * step)
    if b.lo is None and b.hi is not None:  # only fails
        bottom = min(p.load for p in probes)
        step = _gallop(probes, _jump(b.hi.margin, rel_tol, hint is not None), passes=False)
        return None if bottom <= low else max(low, b.hi.load / step)
    assert b.lo is not None and b.hi is not None  # a probe is either a pass or a fail
    lo, hi = b.lo.load, b.hi.load
    if hi / lo - 1 <= rel_tol:
        return None
    last = probes[-2:]
    same_end = len(last) == 2 and last[0].slo_met == last[1].slo_met
    guess = math.sqrt(lo * hi) if same_end else crossing(b.lo, b.hi)
    inner = 1 + rel_tol / 2
    return min(hi / inner, max(lo * inner, guess))


@dataclass(frozen=True)
class RepeatEstimate:
    """One repeat's capacity: a value inside its final bracket, or a bound with no value."""

    value: float | None
    bound: str | None  # None, "above" (passed at the highest load measured) or "below"
    req_s: float | None = None  # throughput at the crossing (closed loop: interpolated)
    output_tok_s: float | None = None
    lo: float | None = None
    hi: float | None = None


def _between(a: float | None, b: float | None, frac: float) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    return a + (b - a) * frac


def estimate_repeat(probes: Sequence[Probe], open_loop: bool = True) -> RepeatEstimate:
    """The crossing inside a repeat's last bracket (see the module docstring).

    Open loop: req_s = the crossing rate and output_tok_s = it times the mean output tokens
    per request of the bracketing probes. Closed loop (load = users): both are the measured
    throughputs interpolated at the crossing.
    """
    if not probes:
        return RepeatEstimate(None, None)
    b = bracket(probes)
    if b.hi is None:
        return RepeatEstimate(None, "above", lo=max(p.load for p in probes))
    if b.lo is None:
        return RepeatEstimate(None, "below", hi=min(p.load for p in probes))
    c = crossing(b.lo, b.hi)
    frac = (c - b.lo.load) / (b.hi.load - b.lo.load) if b.hi.load > b.lo.load else 0.0
    req_s: float | None
    if open_loop:
        tokens = _between(b.lo.tokens_per_req, b.hi.tokens_per_req, frac)
        req_s, tok_s = c, None if tokens is None else c * tokens
    else:
        req_s = _between(b.lo.req_s, b.hi.req_s, frac)
        tok_s = _between(b.lo.output_tok_s, b.hi.output_tok_s, frac)
    return RepeatEstimate(c, None, req_s, tok_s, b.lo.load, b.hi.load)


def interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean of independent repeat estimates with its interval (method in the module docstring).

    Formula (R < 8): mean +- t_{(1+confidence)/2, R-1} * sd / sqrt(R); R >= 8: BCa bootstrap
    of the mean (scipy.stats.bootstrap, 9999 resamples, seed 0). One value: no interval.
    """
    xs = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    out: dict[str, Any] = {"value": None, "ci_low": None, "ci_high": None, "method": None,
                           "repeats": [float(v) for v in xs]}
    if not xs.size:
        return out
    out["value"] = float(xs.mean())
    if xs.size < 2:
        return out
    from scipy import stats

    if xs.size < BOOTSTRAP_FROM or np.ptp(xs) == 0:
        half = float(stats.t.ppf((1 + confidence) / 2, xs.size - 1) * xs.std(ddof=1) / math.sqrt(xs.size))
        out.update(ci_low=out["value"] - half, ci_high=out["value"] + half, method="t")
        return out
    res = stats.bootstrap((xs,), np.mean, confidence_level=confidence, n_resamples=9999,
                          method="BCa", random_state=np.random.default_rng(0))
    out.update(ci_low=float(res.confidence_interval.low), ci_high=float(res.confidence_interval.high),
               method="bootstrap")
    return out


def capacity(estimates: Sequence[RepeatEstimate]) -> dict[str, dict[str, Any]]:
    """The setup's capacity from its repeats: `req_s` and `output_tok_s`, each
    {value, ci_low, ci_high, method, repeats, bound}. Any repeat with a bound gives the
    setup that bound and no value: a capacity outside the measured loads is never reported.
    """
    bounds = [e.bound for e in estimates if e.bound]
    out = {}
    for key in ("req_s", "output_tok_s"):
        iv = interval([getattr(e, key) for e in estimates if not e.bound])
        if bounds:
            iv.update(value=None, ci_low=None, ci_high=None)
        iv["bound"] = max(set(bounds), key=bounds.count) if bounds else None
        out[key] = iv
    return out


def bound_message(bound: str | None, estimates: Sequence[RepeatEstimate], unit: str = "req/s") -> str | None:
    """One line saying why a setup has no capacity value."""
    if bound == "above":
        top = max(e.lo for e in estimates if e.bound == "above" and e.lo is not None)
        return (f"the SLO held at the highest load measured ({top:g} {unit}): capacity is above it; "
                "raise search.high")
    if bound == "below":
        bottom = min(e.hi for e in estimates if e.bound == "below" and e.hi is not None)
        return (f"the SLO was missed at the lowest load measured ({bottom:g} {unit}): capacity is below it; "
                "lower search.low")
    return None
