"""Read-only queries over the store for the CLI, the dashboard and analysis.

Every function opens a short-lived read-only connection (retrying while a writer holds
the file) and returns plain Python values or a pandas DataFrame; none writes.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from store.ingest import REQUEST_COLUMNS
from store.schema import Readable, StoreError, connect_read, reading, store_name

_RUN_COLUMNS = ("run_id", "status", "created_at", "started_at", "ended_at", "target", "label",
                "config", "host", "version", "error", "self_check", "sweep_id", "setup",
                "engine", "engine_version", "model", "dtype", "hardware")
_STEP_COLUMNS = ("run_id", "step", "mode", "users", "rate", "duration_s", "warmup_s",
                 "t_start_ns", "t_end_ns", "wall_start_ns", "status", "client_cpu_pct", "scheduled", "capped",
                 "client_stall_max_ms")


def _iso(ts: datetime | None) -> str | None:
    """Store timestamps are naive UTC; render them as ISO 8601 with a Z."""
    return None if ts is None else ts.isoformat(timespec="seconds") + "Z"


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _run_dict(row: tuple) -> dict[str, Any]:
    run = dict(zip(_RUN_COLUMNS, row))
    for key in ("created_at", "started_at", "ended_at"):
        run[key] = _iso(run[key])
    run["config"] = _json(run["config"]) or {}
    run["host"] = _json(run["host"])
    run["self_check"] = _json(run["self_check"])
    return run


def list_runs(path: str | Path) -> list[dict[str, Any]]:
    """Every run, newest first, with request and step counts and the load's mode/users/rate."""
    sql = f"""
        SELECT {', '.join('r.' + c for c in _RUN_COLUMNS)},
               coalesce(q.n, 0) AS requests, coalesce(s.n, 0) AS steps
        FROM runs r
        LEFT JOIN (SELECT run_id, count(*) AS n FROM requests GROUP BY run_id) q USING (run_id)
        LEFT JOIN (SELECT run_id, count(*) AS n FROM steps GROUP BY run_id) s USING (run_id)
        ORDER BY r.created_at DESC NULLS LAST, r.run_id DESC"""
    with connect_read(path) as con:
        rows = con.execute(sql).fetchall()
    runs = []
    for row in rows:
        run = _run_dict(row[: len(_RUN_COLUMNS)])
        load = run["config"].get("load") or {}
        runs.append({
            "run_id": run["run_id"], "status": run["status"], "created_at": run["created_at"],
            "started_at": run["started_at"], "ended_at": run["ended_at"],
            "target": run["target"], "label": run["label"],
            "requests": int(row[-2]), "steps": int(row[-1]),
            "mode": load.get("mode"), "users": load.get("users"), "rate": load.get("rate"),
            "arrival": load.get("arrival"), "self_check": _verdict(run["self_check"]),
            "sweep_id": run["sweep_id"], "setup": run["setup"],
        })
    return runs


def _verdict(check: dict[str, Any] | None) -> str | None:
    """`passed`, `failed`, or None for a run without a self-check (older, or not finished)."""
    return None if not check else ("passed" if check.get("passed") else "failed")


def get_run(source: Readable, run_id: str) -> dict[str, Any]:
    """One run row with `config` and `host` parsed; StoreError for an unknown id."""
    with reading(source) as con:
        row = con.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id} in {store_name(source)}")
    return _run_dict(row)


def get_steps(source: Readable, run_id: str) -> list[dict[str, Any]]:
    """The run's step rows, in step order (an empty list for a run with no steps)."""
    with reading(source) as con:
        rows = con.execute(
            f"SELECT {', '.join(_STEP_COLUMNS)} FROM steps WHERE run_id = ? ORDER BY step", [run_id]
        ).fetchall()
    return [dict(zip(_STEP_COLUMNS, row)) for row in rows]


def get_requests(source: Readable, run_id: str, step: int | None = None) -> pd.DataFrame:
    """The run's request rows (optionally one step), ordered by step then send time.

    Integer columns use pandas' nullable Int64; `chunk_ns` holds lists of ints and
    `server` dicts or None.
    """
    where, params = "run_id = ?", list[Any]([run_id])
    if step is not None:
        where, params = where + " AND step = ?", params + [int(step)]
    with reading(source) as con:
        if not con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone():
            raise StoreError(f"no run {run_id} in {store_name(source)}")
        df = con.execute(
            f"SELECT {', '.join(REQUEST_COLUMNS)} FROM requests WHERE {where} ORDER BY step, t_send_ns, req_id",
            params,
        ).df()
    for name, typ in REQUEST_COLUMNS.items():
        if pa.types.is_integer(typ):
            df[name] = df[name].astype("Int64")  # one dtype whether or not the column has nulls
    df["chunk_ns"] = [[] if c is None else list(map(int, c)) if isinstance(c, list) else c.tolist()
                      for c in df["chunk_ns"]]
    df["server"] = [None if s is None or s is pd.NA or (isinstance(s, float)) else json.loads(s)
                    for s in df["server"]]
    return df
