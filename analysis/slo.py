"""Service-level objectives: parse `ttft_p99<=500ms,tpot_p99<=50ms`, judge requests and steps.

Per request (DistServe-style goodput): a request meets the SLO iff it is `ok` and, for
every term, its own value is <= the threshold. Per-request values: ttft, ttft_sched, e2e
and tpot as in analysis/metrics.py; for `itl` the request's *largest* chunk gap (a
request meets an ITL bound only if it never stalled longer than that). A request with
fewer than two output tokens has no tpot/itl; those terms then do not apply to it.
Any other missing value (e.g. ttft_sched in closed loop) counts as a miss.

Per step: the SLO is met iff, for every term, the term's percentile over the measured
requests is <= the threshold, where a failed or cancelled request enters as +infinity;
so errors can never help a step pass. The step-level functions take a RequestTable (or
records) and an optional row mask.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from analysis.metrics import e2e_ns, is_ok, max_itl_ns, tpot_ns, ttft_ns, ttft_sched_ns
from analysis.table import RequestTable, request_table
from servelab.config import SLOTerm

EXAMPLE = "ttft_p99<=500ms,tpot_p99<=50ms"
METRICS = {"ttft": ttft_ns, "ttft_sched": ttft_sched_ns, "tpot": tpot_ns, "itl": max_itl_ns, "e2e": e2e_ns}
_COLUMN = {"ttft": "ttft", "ttft_sched": "ttft_sched", "tpot": "tpot", "itl": "itl_max", "e2e": "e2e"}
_OPTIONAL = ("tpot", "itl")  # undefined for < 2 output tokens: the term does not apply
_UNIT_MS = {"ms": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001}
_TERM = re.compile(
    r"^(?P<metric>[a-z0-9_]+?)_p(?P<pct>\d+(?:\.\d+)?)\s*(?P<op><=|<)\s*"
    r"(?P<num>\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*(?P<unit>ms|us|µs|s)$"
)


def _percent(digits: str) -> float:
    """`99`->99, `999`->99.9, `9999`->99.99, `99.5`->99.5 (the p999 naming convention)."""
    if "." not in digits and digits.startswith("99") and len(digits) > 2:
        return float(f"99.{digits[2:]}")
    return float(digits)


def _parse_term(part: str) -> SLOTerm:
    m = _TERM.match(part.strip().lower())
    if not m:
        raise ValueError(f"bad SLO term {part!r}: expected METRIC_pNN<=VALUE with unit ms, s or us, e.g. {EXAMPLE}")
    metric, pct = m["metric"], _percent(m["pct"])
    if metric not in METRICS:
        raise ValueError(f"unknown SLO metric {metric!r} in {part!r}: use one of {', '.join(METRICS)}, e.g. {EXAMPLE}")
    if not 0 < pct <= 100:
        raise ValueError(f"bad percentile p{m['pct']} in {part!r}: use p50, p90, p95, p99 or p999, e.g. {EXAMPLE}")
    threshold = float(m["num"]) * _UNIT_MS[m["unit"]]
    if threshold <= 0:
        raise ValueError(f"bad threshold in {part!r}: it must be above 0, e.g. {EXAMPLE}")
    return SLOTerm(metric=metric, percentile=pct, threshold_ms=threshold)


def parse_slo(text: str | None) -> list[SLOTerm]:
    """Parse comma-separated SLO terms; '' or None -> []. `<` and `<=` both mean "at most".

    Raises ValueError with a one-line message naming the bad part and a valid example.
    """
    if text is None or not text.strip():
        return []
    parts = text.split(",")
    if any(not p.strip() for p in parts):
        raise ValueError(f"empty SLO term in {text!r}: separate terms with single commas, e.g. {EXAMPLE}")
    return [_parse_term(p) for p in parts]


def format_term(term: SLOTerm) -> str:
    """The canonical string of a term, e.g. `ttft_p99<=500ms` or `itl_p999<=12.5ms`."""
    p = term.percentile
    if p == int(p):
        pct = str(int(p))
    else:
        text = f"{p:g}"
        pct = text.replace(".", "") if text.startswith("99.") else text
    return f"{term.metric}_p{pct}<={term.threshold_ms:g}ms"


def request_value_ns(rec: Mapping[str, Any], metric: str) -> float | None:
    """The request's own value for an SLO metric (itl: its largest gap), in ns."""
    return METRICS[metric](rec)


def term_passes(rec: Mapping[str, Any], term: SLOTerm) -> bool:
    """Whether one request satisfies one term (errors never do).

    Formula: pass = ok and (value_ns <= threshold_ms * 1e6), value as in request_value_ns
    """
    if not is_ok(rec):
        return False
    v = request_value_ns(rec, term.metric)
    if v is None:
        return term.metric in _OPTIONAL
    return v <= term.threshold_ms * 1e6


def meets_slo(rec: Mapping[str, Any], terms: Iterable[SLOTerm]) -> bool:
    """Whether a request meets every term (DistServe's per-request goodput test).

    Formula: meets = ok and all(term_passes(term) for term in terms)
    """
    return is_ok(rec) and all(term_passes(rec, t) for t in terms)


Requests = RequestTable | Iterable[Mapping[str, Any]]


def _table(requests: Requests) -> RequestTable:
    return requests if isinstance(requests, RequestTable) else request_table(requests)


def pass_mask(requests: Requests, term: SLOTerm) -> np.ndarray:
    """term_passes for every row of a table at once.

    Formula: pass = ok & (value_ns <= threshold_ms * 1e6 | (value n/a & metric in {tpot, itl}))
    """
    table = _table(requests)
    v = table.values[_COLUMN[term.metric]]
    with np.errstate(invalid="ignore"):
        within = v <= term.threshold_ms * 1e6
    if term.metric in _OPTIONAL:
        within |= np.isnan(v)
    return table.ok & within


def meets_mask(requests: Requests, terms: Iterable[SLOTerm]) -> np.ndarray:
    """meets_slo for every row of a table at once.

    Formula: meets = ok & AND over terms of pass_mask(term)
    """
    table = _table(requests)
    out = table.ok.copy()
    for t in terms:
        out &= pass_mask(table, t)
    return out


def _percentile_with_misses(values: np.ndarray, p: float) -> float:
    """numpy's linear percentile, except that any weight on +inf gives +inf (never NaN)."""
    xs = np.sort(values)
    rank = (len(xs) - 1) * p / 100.0
    lo = int(math.floor(rank))
    frac = rank - lo
    if frac == 0.0:
        return float(xs[lo])
    a, b = float(xs[lo]), float(xs[lo + 1])
    return math.inf if math.isinf(b) else a + (b - a) * frac


def term_percentile_ms(requests: Requests, term: SLOTerm, rows: np.ndarray | None = None) -> float | None:
    """The term's percentile over the measured requests, in ms; errors enter as +inf.

    Formula: pP over {value_ms(r) if ok(r) else +inf}; requests without tpot/itl skipped
    Returns math.inf when the percentile touches a failed request; None with no values.
    """
    table = _table(requests)
    rows = table.all_rows() if rows is None else rows
    v, ok = table.values[_COLUMN[term.metric]][rows], table.ok[rows]
    keep = ~(ok & np.isnan(v)) if term.metric in _OPTIONAL else np.ones(len(v), dtype=bool)
    ms = np.where(ok & ~np.isnan(v), v / 1e6, math.inf)[keep]
    return _percentile_with_misses(ms, term.percentile) if ms.size else None


def evaluate_terms(requests: Requests, terms: Iterable[SLOTerm], rows: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Each term with its step-level value and verdict: [{"term", "value_ms", "met"}].

    value_ms is None when there is nothing to measure or errors push the percentile past
    every latency; such a term is not met, except a tpot/itl term when every request was
    ok but none had two tokens (the term does not apply to any of them).
    """
    table = _table(requests)
    rows = table.all_rows() if rows is None else rows
    out = []
    for t in terms:
        q = term_percentile_ms(table, t, rows)
        finite = q is not None and math.isfinite(q)
        vacuous = q is None and t.metric in _OPTIONAL and bool(rows.any())
        out.append({"term": format_term(t), "value_ms": q if finite else None,
                    "met": vacuous or (q is not None and finite and q <= t.threshold_ms)})
    return out


def slo_met(requests: Requests, terms: list[SLOTerm], rows: np.ndarray | None = None) -> bool | None:
    """Step verdict: every term's percentile <= its threshold; None without terms or requests.

    Formula: slo_met = all(term_percentile_ms(term) <= term.threshold_ms)
    """
    table = _table(requests)
    rows = table.all_rows() if rows is None else rows
    if not terms or not rows.any():
        return None
    return all(e["met"] for e in evaluate_terms(table, terms, rows))


def slo_attainment(requests: Requests, terms: list[SLOTerm], rows: np.ndarray | None = None) -> float | None:
    """Fraction of measured requests that met every term; errors count as misses.

    Formula: attainment = #(meets_slo) / #(measured requests)
    """
    table = _table(requests)
    rows = table.all_rows() if rows is None else rows
    n = int(rows.sum())
    if not terms or n == 0:
        return None
    return int((meets_mask(table, terms) & rows).sum()) / n
