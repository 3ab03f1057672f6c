"""Two runs or two run sets side by side: ECDFs, percentile deltas with intervals, configs diffed.

- ECDF: for sorted values x[0..n-1], F(x[i]) = (i + 1) / n; thinned to at most `points`
  evenly spaced ranks for drawing (the first and last always kept).
- Percentile delta of a metric (TTFT, ITL, E2E): B's pP minus A's pP, and B / A - 1, with a
  95% interval. With one run on either side: a percentile bootstrap over requests (each
  side's pooled measured values resampled on its own, `n_boot` times, seeded; each
  resample's percentile drawn exactly from its order-statistic distribution, so a side of
  a million values costs one sort, not a million draws per resample). With two or
  more runs on both sides: the gate's per-repeat statistics (analysis/gate.py
  bootstrap_intervals over each run's own pP, medians of the runs), so a run's requests
  are not treated as independent of each other.
- Config diff: both configs flattened to dotted keys; only keys whose values differ.
Pure: no I/O, no clocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from analysis.gate import bootstrap_intervals
from analysis.stats import PERCENTILES, UNIT_NS

METRICS = {"ttft": "TTFT", "itl": "ITL", "e2e": "E2E"}
CONFIDENCE = 0.95


def ecdf(values: np.ndarray, points: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """(x, F(x)) of the empirical CDF, thinned to at most `points` ranks.

    Formula: F(x[i]) = (i + 1) / n over sorted x
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    if n == 0:
        return x, x
    idx = np.unique(np.linspace(0, n - 1, min(points, n)).round().astype(int))
    return x[idx], (idx + 1) / n


def _boot_percentiles(values: np.ndarray, qs: list[float], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, len(qs)) bootstrap draws of each percentile of `values`, drawn exactly without
    materialising the resamples: the k-th smallest of n draws with replacement from sorted x
    is x[j] with j = ceil(U n) - 1, U ~ Beta(k, n - k + 1) (the k-th smallest of n uniforms).

    Formula: k = max(1, ceil(q / 100 * n)); draw = x[clip(ceil(U * n) - 1, 0, n - 1)]
    """
    x = np.sort(values)
    n = x.size
    out = np.empty((n_boot, len(qs)))
    for i, q in enumerate(qs):
        k = min(n, max(1, int(np.ceil(q / 100 * n))))
        u = rng.beta(k, n - k + 1, n_boot)
        out[:, i] = x[np.clip(np.ceil(u * n).astype(np.int64) - 1, 0, n - 1)]
    return out


def request_deltas(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """Per percentile: A, B, B - A and B / A - 1 with 95% bootstrap intervals over requests (ns in)."""
    qs = list(PERCENTILES.values())
    if a.size == 0 or b.size == 0:
        return []
    rng = np.random.default_rng(seed)
    pa, pb = np.percentile(a, qs), np.percentile(b, qs)
    ba, bb = _boot_percentiles(a, qs, n_boot, rng), _boot_percentiles(b, qs, n_boot, rng)
    tail = (1 - CONFIDENCE) / 2 * 100
    diff = np.percentile(bb - ba, [tail, 100 - tail], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.percentile(bb / ba - 1, [tail, 100 - tail], axis=0)
    return [_row(name, pa[i], pb[i], diff[0][i], diff[1][i], rel[0][i], rel[1][i], "bootstrap over requests")
            for i, name in enumerate(PERCENTILES)]


def repeat_deltas(a_runs: Sequence[np.ndarray], b_runs: Sequence[np.ndarray], n_boot: int = 2000,
                  seed: int = 0) -> list[dict[str, Any]]:
    """Per percentile: the medians over runs of each run's own pP, and the gate's bootstrap
    interval (analysis/gate.bootstrap_intervals) of their difference and ratio, at 95%."""
    rows = []
    for name, q in PERCENTILES.items():
        a = np.array([np.percentile(v, q) for v in a_runs if v.size])
        b = np.array([np.percentile(v, q) for v in b_runs if v.size])
        if a.size == 0 or b.size == 0:
            return []
        (rlo, rhi), (alo, ahi) = bootstrap_intervals(a, b, CONFIDENCE, n_boot, seed)
        rows.append(_row(name, float(np.median(a)), float(np.median(b)), alo, ahi, rlo, rhi,
                         f"over runs ({a.size} vs {b.size}), as the gate"))
    return rows


def _row(name: str, a: float, b: float, lo: float, hi: float, rlo: float, rhi: float, method: str) -> dict[str, Any]:
    ms = UNIT_NS["ms"]
    return {"percentile": name, "a_ms": a / ms, "b_ms": b / ms, "delta_ms": (b - a) / ms,
            "delta_low_ms": lo / ms, "delta_high_ms": hi / ms,
            "change": b / a - 1 if a else None, "change_low": float(rlo), "change_high": float(rhi),
            "method": method}


def deltas(a_runs: Sequence[np.ndarray], b_runs: Sequence[np.ndarray]) -> list[dict[str, Any]]:
    """The percentile deltas of one metric: over runs when both sides have two or more, else
    over the pooled requests."""
    if len(a_runs) >= 2 and len(b_runs) >= 2:
        return repeat_deltas(a_runs, b_runs)
    return request_deltas(pool(a_runs), pool(b_runs))


def pool(runs: Sequence[np.ndarray]) -> np.ndarray:
    """One side's runs' values as one array."""
    return np.concatenate(list(runs)) if len(runs) else np.array([], dtype=np.float64)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"load.rate": 5.0, ...}: nested dicts to dotted keys; lists kept as values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_diff(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Keys whose values differ between the sides; a side whose runs disagree on a key shows
    each distinct value (`a | b`)."""
    fa, fb = [flatten(c) for c in a], [flatten(c) for c in b]

    def side(flat: list[dict], key: str) -> str:
        values = list(dict.fromkeys(repr(f.get(key)) for f in flat))
        return " | ".join(values)

    keys = sorted({k for f in fa + fb for k in f})
    rows = [{"setting": k, "A": side(fa, k), "B": side(fb, k)} for k in keys]
    return [r for r in rows if r["A"] != r["B"]]
