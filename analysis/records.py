"""Request records as plain Python values: the one place that reads a field off a record.

A record is a dict or a pandas row with the spool/store fields (docs/architecture.md);
timestamps are int nanoseconds. Frames from the store use nullable dtypes, so a missing
value may arrive as None, pandas.NA or NaN; `field` turns all of them into None.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

_PLAIN = (int, str, bool)


def _plain(v: Any) -> Any:
    if v is None or type(v) in _PLAIN:
        return v
    if v is pd.NA:
        return None
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def field(rec: Mapping[str, Any], key: str) -> Any:
    """rec[key] as a plain Python value; None when missing, None, NA or NaN."""
    v = rec.get(key)
    if v is None or type(v) in _PLAIN:  # as_records' values: the common case, without a call
        return v
    return _plain(v)


def chunks(rec: Mapping[str, Any]) -> list[int]:
    """The request's content-chunk arrival times (ns) as a list of ints; [] when absent."""
    v = rec.get("chunk_ns")
    if type(v) is list:
        return v
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return []
    return [int(x) for x in v]


def _column(series: pd.Series) -> list[Any]:
    if series.name == "chunk_ns":
        return [chunks({"chunk_ns": v}) for v in series.tolist()]
    if series.name == "server":
        return [v if isinstance(v, dict) else None for v in series.tolist()]
    if series.dtype == object or str(series.dtype) in ("str", "string"):
        return [_plain(v) for v in series.tolist()]
    # numeric (nullable) columns: one vectorised pass instead of a check per value
    return series.astype(object).where(series.notna(), None).tolist()


def as_records(requests: pd.DataFrame | Iterable[Mapping[str, Any]],
               columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Plain dicts (None for missing values, chunk_ns as list[int]) from a frame or records.

    `columns` limits a frame to the fields the caller reads (records are copied whole).
    """
    if isinstance(requests, pd.DataFrame):
        names = list(requests.columns) if columns is None else [c for c in columns if c in requests.columns]
        cols = {name: _column(requests[name]) for name in names}
        names = list(cols)
        return [dict(zip(names, row)) for row in zip(*cols.values())]
    return [{k: (chunks(r) if k == "chunk_ns" else _plain(v)) for k, v in r.items()} for r in requests]
