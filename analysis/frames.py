"""Per-request metrics as a pandas DataFrame, for plots and exports (e.g. the dashboard).

One row per request, in the input's order, with the metrics of analysis/metrics.py in
milliseconds (NaN where not applicable) and `t_s`, the send time in seconds since the
run's first send, for latency-over-time charts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.records import as_records
from analysis.table import FIELDS, RequestTable, request_table

MS_COLUMNS = {"ttft_ms": "ttft", "ttft_sched_ms": "ttft_sched", "schedule_lag_ms": "schedule_lag",
              "e2e_ms": "e2e", "tpot_ms": "tpot", "itl_max_ms": "itl_max"}


def request_frame(requests: pd.DataFrame | Iterable[Mapping[str, Any]], table: RequestTable | None = None) -> pd.DataFrame:
    """Columns: req_id, step, status, t_s, ttft_ms, ttft_sched_ms, schedule_lag_ms, e2e_ms,
    tpot_ms, itl_max_ms, output_tokens, prompt_tokens.

    `table`: the requests' RequestTable when the caller has built it already (it is the
    costly part on a large run).

    Formula: t_s = (t_send_ns - min t_send_ns) / 1e9; *_ms = the metric in ns / 1e6
    """
    if isinstance(requests, pd.DataFrame) and "req_id" in requests:
        ids = requests["req_id"].tolist()
    else:
        requests = as_records(requests, columns=(*FIELDS, "req_id"))
        ids = [r.get("req_id") for r in requests]
    table = request_table(requests) if table is None else table
    send = table.times["t_send_ns"]
    t0 = np.nanmin(send) if np.isfinite(send).any() else np.nan
    frame = pd.DataFrame({"req_id": ids, "step": table.step, "status": table.status,
                          "t_s": (send - t0) / 1e9})
    for column, name in MS_COLUMNS.items():
        frame[column] = table.values[name] / 1e6
    frame["output_tokens"] = table.output_tokens
    frame["prompt_tokens"] = table.prompt_tokens
    return frame


def itl_ms(requests: pd.DataFrame | Iterable[Mapping[str, Any]], table: RequestTable | None = None) -> np.ndarray:
    """The pooled inter-token gaps of the ok requests, in ms (the ITL distribution).

    Formula: chunk_ns[i] - chunk_ns[i-1] over every ok request, / 1e6
    """
    table = request_table(requests) if table is None else table
    return table.gaps[table.ok[table.gap_row]] / 1e6
