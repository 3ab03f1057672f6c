"""A sweep's capacities judged again against another SLO, from the percentiles its points recorded.

`servelab recommend --slo` uses this when the SLO asked for differs from the one the sweep
searched with. Per point: the SLO is met iff, for every term, the point's recorded
percentile of that metric (`ttft_ms.p99`, ...) is <= the threshold. Per repeat: capacity =
the achieved req/s of the highest load that met it below the lowest load that missed it
(no interpolation between loads: a conservative figure). Over repeats: value = mean,
interval = mean +- t_{0.975, n-1} * s / sqrt(n) (none with one repeat). Pure.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from scipy import stats

_KEYS = {50.0: "p50", 90.0: "p90", 95.0: "p95", 99.0: "p99", 99.9: "p999"}


def point_meets(point: Mapping[str, Any], terms: Iterable[Any]) -> bool | None:
    """Whether the point met every term; None when a term's figure was not recorded."""
    for term in terms:
        key = _KEYS.get(float(term.percentile))
        if key is None or term.metric == "ttft_sched":
            raise ValueError(f"{term.metric} p{term.percentile:g} is not recorded per sweep point: use ttft, tpot, "
                             "itl or e2e at p50, p90, p95, p99 or p999")
        value = (point.get(f"{term.metric}_ms") or {}).get(key)
        if value is None:
            return None
        if value > term.threshold_ms:
            return False
    return True


def _repeat_capacity(points: list[Mapping[str, Any]], terms: list) -> tuple[float | None, bool]:
    """(capacity of one repeat, whether every load measured met the SLO)."""
    pts = sorted(points, key=lambda p: p.get("offered_rate") or p.get("rate") or 0.0)
    best = None
    for p in pts:
        if not point_meets(p, terms):
            return best, False
        best = p.get("req_s")
    return best, True


def capacity_interval(values: list[float]) -> dict[str, Any]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"value": mean, "ci_low": None, "ci_high": None}
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * s / math.sqrt(n)
    return {"value": mean, "ci_low": mean - half, "ci_high": mean + half}


def rejudge_setup(setup: Mapping[str, Any], terms: list) -> dict[str, Any]:
    out = copy.deepcopy(dict(setup))
    by_repeat: dict[int, list] = defaultdict(list)
    for p in out.get("points") or []:
        if p.get("status", "completed") == "completed":
            p["slo_met"] = point_meets(p, terms)
            by_repeat[p.get("repeat", 0)].append(p)
    caps = [_repeat_capacity(pts, terms) for pts in by_repeat.values()]
    found = [c for c, _ in caps if c is not None]
    bound = "below" if not found else "above" if all(all_met for _, all_met in caps) else None
    cap: dict[str, Any] = {"value": None, "ci_low": None, "ci_high": None} if bound else capacity_interval(found)
    cap.update(bound=bound, repeats=found, method="rejudged: highest met load per repeat, t interval")
    out["capacity_req_s"] = cap
    per_req = out.get("output_tokens_per_req")
    out["capacity_output_tok_s"] = None if per_req is None else {
        **{k: (None if cap[k] is None else cap[k] * per_req) for k in ("value", "ci_low", "ci_high")},
        "bound": bound, "repeats": [c * per_req for c in found], "method": cap["method"]}
    return out


def rejudge(sweep: Mapping[str, Any], terms: list, slo_text: str) -> dict[str, Any]:
    """A copy of the sweep with every setup's points and capacity judged against `terms`."""
    out = dict(sweep)
    out["setups"] = [rejudge_setup(s, terms) for s in sweep.get("setups") or []]
    out["slo"], out["slo_searched"] = slo_text, sweep.get("slo")
    return out
