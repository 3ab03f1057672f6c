"""What the gate measures: the metric catalog, its default floors, and one repeat's values.

A gated metric is one number per repeat taken from the run summary (analysis/summary.py):
`ttft_p99` is the run's `ttft_ms.p99`, `output_tok_s` its output tokens/s over the steady
window, `error_rate` its failed fraction of measured requests. Floors are the smallest
change that matters (analysis/gate.py): both the relative and the absolute one must be
passed. Defaults: 10% for latencies and throughput, with absolute floors of 1 ms on TTFT
(a millisecond is below what a user notices and what a shared machine repeats), 0.5 ms on
TPOT and 5 ms on E2E; the error rate has no relative floor (from 0 every rise is
infinite) and an absolute one of 1 percentage point.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from analysis.gate import MetricSpec

_LATENCY_ABS = {"ttft": 1.0, "ttft_sched": 1.0, "tpot": 0.5, "itl": 0.5, "e2e": 5.0}
_QUANTILES = ("p50", "p90", "p95", "p99", "mean")


def _catalog() -> dict[str, MetricSpec]:
    out = {f"{m}_{q}": MetricSpec(f"{m}_{q}", "ms", False, 0.10, floor)
           for m, floor in _LATENCY_ABS.items() for q in _QUANTILES}
    out["output_tok_s"] = MetricSpec("output_tok_s", "tok/s", True, 0.10, 0.0)
    out["req_s"] = MetricSpec("req_s", "req/s", True, 0.10, 0.0)
    out["error_rate"] = MetricSpec("error_rate", "fraction", False, 0.0, 0.01)
    return out


CATALOG = _catalog()
DEFAULT_METRICS = ("ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "e2e_p99", "output_tok_s", "error_rate")
_THRESHOLD = re.compile(r"^(?P<name>[a-z0-9_]+)=(?P<rel>\d+(?:\.\d+)?)%(?::(?P<abs>\d+(?:\.\d+)?(?:e-?\d+)?))?$")


def metric_value(summary: Mapping[str, Any], name: str) -> float | None:
    """One repeat's value of metric `name` from its run summary; None when not measured."""
    if name in ("output_tok_s", "req_s", "error_rate"):
        value = summary.get(name)
    else:
        family, quantile = name.rsplit("_", 1)
        value = (summary.get(f"{family}_ms") or {}).get(quantile)
    return None if value is None else float(value)


def repeat_values(summaries: Iterable[Mapping[str, Any]], specs: Iterable[MetricSpec]) -> dict[str, list]:
    """{metric: [value of each repeat, in order]} over a side's run summaries."""
    summaries = list(summaries)
    return {s.name: [metric_value(r, s.name) for r in summaries] for s in specs}


def parse_metrics(text: str | None) -> list[MetricSpec]:
    """`ttft_p99,error_rate` -> their specs (None: the defaults); ValueError names a bad one."""
    names = [n.strip() for n in text.split(",")] if text else list(DEFAULT_METRICS)
    unknown = [n for n in names if n not in CATALOG]
    if unknown or not names:
        raise ValueError(f"unknown gate metric {unknown[0] if unknown else text!r}: use any of "
                         f"{', '.join(CATALOG)}")
    return [CATALOG[n] for n in dict.fromkeys(names)]


def apply_thresholds(specs: list[MetricSpec], terms: Iterable[str]) -> list[MetricSpec]:
    """Overrides floors: `ttft_p99=5%:2` is a 5% relative and 2 (ms) absolute floor;
    `ttft_p99=5%` changes only the relative one. A term for a metric not gated is an error."""
    by_name = {s.name: s for s in specs}
    for term in terms:
        for part in (p.strip() for p in term.split(",") if p.strip()):
            m = _THRESHOLD.match(part)
            if not m:
                raise ValueError(f"bad --threshold {part!r}: expected METRIC=REL%[:ABS], e.g. ttft_p99=5%:2")
            name = m["name"]
            if name not in by_name:
                raise ValueError(f"--threshold {part!r}: {name} is not among the gated metrics "
                                 f"({', '.join(by_name)})")
            spec = replace(by_name[name], rel_floor=float(m["rel"]) / 100)
            by_name[name] = replace(spec, abs_floor=float(m["abs"])) if m["abs"] else spec
    return [by_name[s.name] for s in specs]
