"""Distribution summaries: the percentiles every latency metric is reported with.

Method: numpy's default linear interpolation between closest ranks (the same as
`numpy.percentile(..., method="linear")`, Hyndman & Fan type 7, used by vLLM's
benchmark_serving). For n values sorted x[0..n-1], pP = x[k] + (x[k+1]-x[k])*f where
k + f = (n - 1) * P / 100.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
UNIT_NS: dict[str, float] = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
SUMMARY_KEYS = (*PERCENTILES, "mean")


def _array(values: Iterable[float | None] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    return np.array([v for v in values if v is not None], dtype=np.float64)


def percentile(values: Iterable[float | None] | np.ndarray, p: float) -> float | None:
    """The p-th percentile (0..100) of the non-None values, linear interpolation; None if empty.

    Formula: pP = x[k] + (x[k+1] - x[k]) * f, with k + f = (n - 1) * P / 100 over sorted x
    """
    arr = _array(values)
    return None if arr.size == 0 else float(np.percentile(arr, p))


def percentiles(values: Iterable[float | None] | np.ndarray, unit: str = "ms") -> dict[str, float | None]:
    """{"p50","p90","p95","p99","p999","mean"} of nanosecond values, in `unit`; all None if empty.

    Formula: each pP as in `percentile`, mean = sum(x) / n, then divided by the unit in ns
    """
    scale = UNIT_NS[unit]
    arr = _array(values)
    if arr.size == 0:
        return dict.fromkeys(SUMMARY_KEYS)
    qs = np.percentile(arr, list(PERCENTILES.values()))
    out: dict[str, float | None] = {k: float(q) / scale for k, q in zip(PERCENTILES, qs)}
    out["mean"] = float(arr.mean()) / scale
    return out
