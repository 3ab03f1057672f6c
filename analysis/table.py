"""The per-request metric table: each metric of analysis/metrics.py evaluated once per request.

Summaries pick populations (measured, completed, one step) with boolean masks over these
numpy columns instead of walking records again for every figure. Durations are float64
nanoseconds with NaN for "not applicable"; absolute perf_counter times become float64 too,
which keeps them to within a few ns, far below anything reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.metrics import (
    e2e_ns, is_ok, itl_gaps, output_tokens, tokens_per_gap, prompt_tokens, schedule_lag_ns, tpot_ns, ttft_ns,
    ttft_sched_ns,
)
from analysis.records import as_records, chunks

PER_REQUEST = {"ttft": ttft_ns, "ttft_sched": ttft_sched_ns, "schedule_lag": schedule_lag_ns,
               "e2e": e2e_ns, "tpot": tpot_ns}
TIMES = ("t_sched_ns", "t_send_ns", "t_last_ns")
FIELDS = ("step", "status", "t_sched_ns", "t_send_ns", "t_first_ns", "t_last_ns", "chunk_ns",
          "output_tokens", "output_tokens_client", "prompt_tokens", "prompt_tokens_client")


@dataclass
class RequestTable:
    """Numpy columns, one row per request (see module docstring for units)."""

    step: np.ndarray  # float64, NaN when a record has no step
    status: np.ndarray  # object: the status strings
    ok: np.ndarray  # bool
    times: dict[str, np.ndarray]  # TIMES -> float64 ns
    values: dict[str, np.ndarray]  # PER_REQUEST names and "itl_max" -> float64 ns
    output_tokens: np.ndarray  # float64
    prompt_tokens: np.ndarray  # float64
    gaps: np.ndarray  # int64: every chunk gap of every request (the pooled ITL)
    gap_row: np.ndarray  # int64: the row each gap belongs to
    token_gaps: np.ndarray  # float64: each gap / its request's tokens_per_gap (ITL per token)
    usage_missing: np.ndarray  # bool: streamed without usage, so its length is the chunk count

    def __len__(self) -> int:
        return len(self.ok)

    def all_rows(self) -> np.ndarray:
        return np.ones(len(self), dtype=bool)


def _floats(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def request_table(requests: pd.DataFrame | Iterable[Mapping[str, Any]]) -> RequestTable:
    """Evaluate every per-request metric once and lay the results out as columns.

    A frame whose integer fields have integer dtypes (what the store returns) is evaluated
    column-wise (`_frame_table`, the same formulas over whole columns, tested equal to the
    per-record path); anything else goes through the per-record definitions."""
    if isinstance(requests, pd.DataFrame) and _integer_columns(requests):
        return _frame_table(requests)
    records = as_records(requests, columns=FIELDS)
    cols: dict[str, list[Any]] = {k: [] for k in (*PER_REQUEST, *TIMES, "out", "prompt")}
    for r in records:
        for name, fn in PER_REQUEST.items():
            cols[name].append(fn(r))
        for name in TIMES:
            cols[name].append(r.get(name))
        cols["out"].append(output_tokens(r))
        cols["prompt"].append(prompt_tokens(r))
    gaps, gap_row = itl_gaps([chunks(r) for r in records])
    per_gap = np.array([tokens_per_gap(r) for r in records], dtype=np.float64)
    values = {name: _floats(cols[name]) for name in PER_REQUEST}
    values["itl_max"] = _row_max(gaps, gap_row, len(records))
    return RequestTable(
        step=_floats([r.get("step") for r in records]),
        status=np.array([r.get("status") for r in records], dtype=object),
        ok=np.array([is_ok(r) for r in records], dtype=bool),
        times={name: _floats(cols[name]) for name in TIMES},
        values=values, output_tokens=_floats(cols["out"]), prompt_tokens=_floats(cols["prompt"]),
        gaps=gaps, gap_row=gap_row, token_gaps=gaps / per_gap[gap_row] if gaps.size else gaps.astype(np.float64),
        usage_missing=np.array([r.get("output_tokens") is None and bool(r.get("output_tokens_client"))
                                for r in records], dtype=bool),
    )


INTEGER_FIELDS = ("step", "t_sched_ns", "t_send_ns", "t_first_ns", "t_last_ns", "output_tokens",
                  "output_tokens_client", "prompt_tokens", "prompt_tokens_client")


def _integer_columns(df: pd.DataFrame) -> bool:
    """Every integer field present has an integer dtype (a float column could have rounded
    a large timestamp already; those frames take the per-record path)."""
    return all(pd.api.types.is_integer_dtype(df[name].dtype) for name in INTEGER_FIELDS if name in df)


def _ints(df: pd.DataFrame, name: str) -> pd.Series:
    """The column as nullable Int64 (all NA when the frame lacks it, as `field` gives None)."""
    if name not in df:
        return pd.Series(pd.NA, index=df.index, dtype="Int64")
    return df[name].astype("Int64")


def _f64(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def _frame_table(df: pd.DataFrame) -> RequestTable:
    """request_table over whole columns: the formulas of analysis/metrics.py, with integer
    differences taken exactly in int64 before they become float64 (as the per-record path)."""
    col = {name: _ints(df, name) for name in INTEGER_FIELDS}
    raw = df["chunk_ns"].tolist() if "chunk_ns" in df else [[] for _ in range(len(df))]
    lists = raw if all(type(v) is list for v in raw) else [chunks({"chunk_ns": v}) for v in raw]
    n_chunks = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    first, send, last = col["t_first_ns"], col["t_send_ns"], col["t_last_ns"]
    out = col["output_tokens"].fillna(col["output_tokens_client"])
    span = last - first
    n, span_f = _f64(out), _f64(span)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where((n >= 2) & ~np.isnan(span_f) & (n_chunks >= 2), span_f / (n - 1), np.nan)
        usage = _f64(col["output_tokens"])
        per_gap = np.where(np.isnan(usage) | (n_chunks < 2), 1.0,
                           np.maximum(1.0, (usage - 1) / np.maximum(n_chunks - 1, 1)))
    values = {"ttft": _f64(first - send), "ttft_sched": _f64(first - col["t_sched_ns"]),
              "schedule_lag": _f64(send - col["t_sched_ns"]), "e2e": _f64(last - send), "tpot": tpot}
    gaps, gap_row = itl_gaps(lists)
    values["itl_max"] = _row_max(gaps, gap_row, len(lists))
    status = df["status"] if "status" in df else pd.Series(None, index=df.index, dtype=object)
    client = col["output_tokens_client"]
    return RequestTable(
        step=_f64(col["step"]),
        status=status.astype(object).where(status.notna(), None).to_numpy(dtype=object),
        ok=(status == "ok").to_numpy(dtype=bool, na_value=False),
        times={name: _f64(col[name]) for name in TIMES},
        values=values, output_tokens=n, prompt_tokens=_f64(col["prompt_tokens"].fillna(col["prompt_tokens_client"])),
        gaps=gaps, gap_row=gap_row, token_gaps=gaps / per_gap[gap_row] if gaps.size else gaps.astype(np.float64),
        usage_missing=(col["output_tokens"].isna() & client.notna() & (client != 0)).to_numpy(dtype=bool,
                                                                                              na_value=False),
    )


def _row_max(gaps: np.ndarray, gap_row: np.ndarray, n: int) -> np.ndarray:
    """Each request's largest gap (max_itl_ns), NaN for requests with no gap."""
    out = np.full(n, np.nan)
    if gaps.size:
        starts = np.flatnonzero(np.r_[True, gap_row[1:] != gap_row[:-1]])  # gaps come grouped by row
        out[gap_row[starts]] = np.maximum.reduceat(gaps, starts)
    return out
