"""The Live page's reading and tables: what a run or sweep in progress has finished so far.

Each refresh opens the store read-only for a moment (store/queries.py, store/sweeps.py),
like every page; when a writer holds the file past the read's short retry, the page says
"live data delayed" and counts the spool files instead (store.runs.spooled_requests: file
reads only), so it never waits on, nor holds up, the process that is ingesting.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from dashboard import views
from store import queries, runs as store_runs, sweeps as store_sweeps
from store.schema import StoreBusyError


def snapshot(path: str) -> dict[str, Any]:
    """{"runs", "sweeps", "delayed", "read_at"}: the listings now, or `delayed` (the busy
    error's text) with the spool counts of the runs the last good read saw running."""
    read_at = time.strftime("%H:%M:%S", time.gmtime())
    try:
        return {"runs": queries.list_runs(path), "sweeps": store_sweeps.list_sweeps(path), "delayed": None,
                "read_at": read_at}
    except StoreBusyError as exc:
        return {"runs": None, "sweeps": None, "delayed": str(exc), "read_at": read_at}


def running_runs_frame(path: str, rows: list[dict]) -> pd.DataFrame:
    """Runs still running: their ingested steps and requests, and what their spool holds."""
    out = []
    for r in rows:
        if r.get("status") != "running":
            continue
        spooled = store_runs.spooled_requests(path, r["run_id"])
        out.append({"run": "run?run=" + r["run_id"], "label": r.get("label") or "",
                    "load": views.load_text(r.get("mode"), r.get("users"), r.get("rate")),
                    "steps ingested": r.get("steps"), "requests ingested": r.get("requests"),
                    "requests spooled": sum(spooled.values()), "started": views.when(r.get("started_at"))})
    return pd.DataFrame(out, columns=["run", "label", "load", "steps ingested", "requests ingested",
                                      "requests spooled", "started"])


def spool_frame(path: str, run_ids: list[str]) -> pd.DataFrame:
    """While the store is busy: each known run's spooled request count, per step."""
    rows = [{"run": run_id, "step": step, "requests spooled": n}
            for run_id in run_ids for step, n in store_runs.spooled_requests(path, run_id).items()]
    return pd.DataFrame(rows, columns=["run", "step", "requests spooled"])


def pick_sweep(sweeps: list[dict]) -> dict | None:
    """The sweep to follow: the newest running one, else the newest."""
    running = [s for s in sweeps if s.get("status") == "running"]
    return (running or sweeps)[0] if (running or sweeps) else None
