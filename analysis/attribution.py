"""What each lever bought: every setup against a named baseline, with 95% intervals.

Per setup: capacity (ratio to the baseline's), $ per 1M output tokens (% change) and p99
TTFT and TPOT (% change), each with an interval from the per-repeat figures of the sweep
(`capacity_req_s.repeats`, ...), and a verdict: "no measurable change" when the interval
contains no change. Pure (docs/metrics.md, "Lever attribution").

Interval of a ratio of means r = mean(a) / mean(b) (delta method on log r, Welch's t):
  se^2 = s_a^2 / (n_a mean_a^2) + s_b^2 / (n_b mean_b^2)
  df   = se^4 / (u_a^2 / (n_a - 1) + u_b^2 / (n_b - 1)),  u = s^2 / (n mean^2)
  CI   = r * exp(+-t_{0.975, df} * se)
It needs at least two repeats on each side; with fewer the figure has no interval.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from scipy import stats

LEVEL = 0.95


def _mean_var(xs: Sequence[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, sum((x - m) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0


def ratio_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> dict[str, Any] | None:
    """mean(a) / mean(b) with its interval (module docstring); None if a mean is not positive."""
    a, b = [x for x in a if x is not None], [x for x in b if x is not None]
    if not a or not b:
        return None
    (ma, va), (mb, vb) = _mean_var(a), _mean_var(b)
    if ma <= 0 or mb <= 0:
        return None
    r = ma / mb
    if len(a) < 2 or len(b) < 2:
        return {"value": r, "ci_low": None, "ci_high": None, "method": "no interval: fewer than 2 repeats"}
    ua, ub = va / (len(a) * ma * ma), vb / (len(b) * mb * mb)
    se = math.sqrt(ua + ub)
    if se == 0:
        return {"value": r, "ci_low": r, "ci_high": r, "method": "delta-log-t"}
    df = se ** 4 / (ua * ua / (len(a) - 1) + ub * ub / (len(b) - 1))
    half = stats.t.ppf(0.5 + level / 2, df) * se
    return {"value": r, "ci_low": r * math.exp(-half), "ci_high": r * math.exp(half), "method": "delta-log-t"}


def as_percent(ratio: Mapping[str, Any] | None, factor: float = 1.0, invert: bool = False) -> dict[str, Any] | None:
    """A ratio interval as a % change of factor * ratio (or factor / ratio, bounds swapped)."""
    if ratio is None:
        return None

    def pct(x):
        if x is None:
            return None
        return 100.0 * ((factor / x if invert else factor * x) - 1.0)

    lo, hi = (ratio["ci_high"], ratio["ci_low"]) if invert else (ratio["ci_low"], ratio["ci_high"])
    return {"value": pct(ratio["value"]), "ci_low": pct(lo), "ci_high": pct(hi), "method": ratio["method"]}


def verdict(interval: Mapping[str, Any] | None, none_at: float) -> str:
    """"no measurable change" when the interval contains `none_at` (1 for ratios, 0 for %)."""
    if interval is None or interval.get("value") is None:
        return "not measured"
    lo, hi = interval.get("ci_low"), interval.get("ci_high")
    if lo is None or hi is None:
        return "no interval"
    if lo <= none_at <= hi:
        return "no measurable change"
    return "higher" if lo > none_at else "lower"


def _by_repeat(setup: Mapping[str, Any]) -> dict[int, dict[float, list[Mapping[str, Any]]]]:
    out: dict[int, dict[float, list]] = defaultdict(lambda: defaultdict(list))
    for p in setup.get("points") or []:
        if p.get("status", "completed") == "completed":
            load = p["users"] if p.get("users") is not None else p.get("rate")
            out[p.get("repeat", 0)][load].append(p)
    return out


def _metric(points: list[Mapping[str, Any]], metric: str) -> float | None:
    vals = [float(v) for p in points if (v := (p.get(f"{metric}_ms") or {}).get("p99")) is not None]
    return sum(vals) / len(vals) if vals else None


def common_load(base: Mapping[str, Any], other: Mapping[str, Any]) -> float | None:
    """The highest load measured in every repeat of both setups at which the baseline met the SLO."""
    b, o = _by_repeat(base), _by_repeat(other)
    if not b or not o:
        return None
    loads = set.intersection(*(set(r) for r in [*b.values(), *o.values()]))
    ok = [x for x in loads if all(all(p.get("slo_met") for p in r[x]) for r in b.values())]
    return max(ok) if ok else None


def latency_repeats(setup: Mapping[str, Any], metric: str, load: float | None) -> list[float]:
    """Per repeat: the p99 of `metric` at `load`, or (load None) at the repeat's highest SLO-meeting load."""
    out = []
    for loads in _by_repeat(setup).values():
        if load is None:
            met = [x for x, pts in loads.items() if all(p.get("slo_met") for p in pts)]
            if not met:
                continue
            pts = loads[max(met)]
        else:
            pts = loads.get(load, [])
        v = _metric(pts, metric)
        if v is not None:
            out.append(v)
    return out


def _output_repeats(setup: Mapping[str, Any]) -> list[float]:
    out = (setup.get("capacity_output_tok_s") or {}).get("repeats")
    if out:
        return list(out)
    per_req = setup.get("output_tokens_per_req")
    reqs = (setup.get("capacity_req_s") or {}).get("repeats") or []
    return [] if per_req is None else [r * per_req for r in reqs]


def compare(base: Mapping[str, Any], other: Mapping[str, Any], price_ratio: float | None) -> dict[str, Any]:
    """One setup against the baseline (`price_ratio` = its $/hour over the baseline's, or None)."""
    bracketed = all((s.get("capacity_req_s") or {}).get("bound") is None for s in (base, other))
    cap = ratio_interval((other.get("capacity_req_s") or {}).get("repeats") or [],
                         (base.get("capacity_req_s") or {}).get("repeats") or []) if bracketed else None
    tok = ratio_interval(_output_repeats(other), _output_repeats(base)) if bracketed else None
    usd = None if price_ratio is None else as_percent(tok, price_ratio, invert=True)
    load = common_load(base, other)
    row = {"setup": other.get("name"), "baseline": base.get("name"),
           "capacity_ratio": cap, "capacity_verdict": verdict(cap, 1.0),
           "usd_per_1m_output_tokens_pct": usd, "usd_verdict": verdict(usd, 0.0),
           "latency_at": "capacity" if load is None else load}
    for metric in ("ttft", "tpot"):
        r = ratio_interval(latency_repeats(other, metric, load), latency_repeats(base, metric, load))
        pct = as_percent(r)
        row[f"{metric}_p99_pct"] = pct
        row[f"{metric}_verdict"] = verdict(pct, 0.0)
    return row


def attribution(sweep: Mapping[str, Any], baseline: str, usd_per_hour: Mapping[str, float | None]) -> dict[str, Any]:
    """Every setup of the sweep against `baseline` (a setup name); ValueError if it is not there."""
    setups = {s.get("name"): s for s in sweep.get("setups") or []}
    if baseline not in setups:
        raise ValueError(f"no setup {baseline!r} in the sweep: its setups are {', '.join(map(str, setups))}")
    base_usd = usd_per_hour.get(baseline)
    rows = []
    for name, s in setups.items():
        if name == baseline:
            continue
        usd = usd_per_hour.get(name)
        rows.append(compare(setups[baseline], s, None if not base_usd or usd is None else usd / base_usd))
    return {"sweep_id": sweep.get("sweep_id"), "baseline": baseline, "level": LEVEL, "rows": rows}
