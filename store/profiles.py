"""Profiler results in the store: torch-profiler operators and traces, and sample queries.

Owns the `operators` table (migration `m002_operators`): the top operators of one step's
torch-profiler window, linked to (run_id, step), with the Chrome trace kept beside the
store as `<store>.traces/<run_id>-step<k>.json`. Samples themselves are ingested with the
requests (store/ingest.py); `get_samples` reads them back for analysis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from store.ingest import SAMPLE_COLUMNS
from store.schema import Readable, connect_write, reading

OPERATOR_COLUMNS = ("rank", "name", "calls", "self_cpu_us", "self_cuda_us", "cpu_total_us",
                    "cuda_total_us", "window_s", "trace_path", "window_start_ns", "window_end_ns")


def traces_dir(path: str | Path) -> Path:
    """`<store>.traces/`, created if missing."""
    d = Path(f"{path}.traces")
    d.mkdir(parents=True, exist_ok=True)
    return d


def trace_path(path: str | Path, run_id: str, step: int) -> Path:
    """Where a step's Chrome trace is kept: `<store>.traces/<run_id>-step<k>.json`."""
    return traces_dir(path) / f"{run_id}-step{int(step)}.json"


def save_operators(path: str | Path, run_id: str, step: int, operators: list[dict[str, Any]],
                   trace: str | None, window_s: float | None,
                   window_ns: tuple[int | None, int | None] = (None, None)) -> int:
    """Replace the step's operator rows (rank = list order, from 1); returns the row count.
    window_ns: when the window ran, on the requests' clock (start, end)."""
    rows = [[run_id, int(step), rank, str(op.get("name")), op.get("calls"), op.get("self_cpu_us"),
             op.get("self_cuda_us"), op.get("cpu_total_us"), op.get("cuda_total_us"), window_s, trace,
             *window_ns] for rank, op in enumerate(operators, start=1)]
    with connect_write(path) as con:
        con.begin()
        con.execute("DELETE FROM operators WHERE run_id = ? AND step = ?", [run_id, int(step)])
        if rows:
            marks = ", ".join("?" * (2 + len(OPERATOR_COLUMNS)))
            con.executemany("INSERT INTO operators (run_id, step, " + ", ".join(OPERATOR_COLUMNS) + ")"
                            f" VALUES ({marks})", rows)
        con.commit()
    return len(rows)


def get_operators(source: Readable, run_id: str, step: int | None = None) -> list[dict[str, Any]]:
    """The stored top operators of a run (or one step), by step then rank."""
    where, params = "run_id = ?", list[Any]([run_id])
    if step is not None:
        where, params = where + " AND step = ?", params + [int(step)]
    cols = ("step", *OPERATOR_COLUMNS)
    with reading(source) as con:
        rows = con.execute(f"SELECT {', '.join(cols)} FROM operators WHERE {where} ORDER BY step, rank",
                           params).fetchall()
    return [dict(zip(cols, r)) for r in rows]


def get_samples(source: Readable, run_id: str) -> pd.DataFrame:
    """The run's sample rows (every producer), ordered by step, producer and t_ns."""
    with reading(source) as con:
        return con.execute(
            f"SELECT {', '.join(SAMPLE_COLUMNS)} FROM samples WHERE run_id = ? ORDER BY step, producer, t_ns",
            [run_id]).df()


def get_engine_samples(source: Readable, run_id: str) -> pd.DataFrame:
    """The run's engine metrics (table `engine_samples`, migration m007_engines), in time order."""
    with reading(source) as con:
        return con.execute("SELECT step, t_ns, wall_ns, name, labels, value FROM engine_samples"
                           " WHERE run_id = ? ORDER BY step, t_ns, name, labels", [run_id]).df()
