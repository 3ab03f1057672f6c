"""Reading sweeps back: the stored sweep and its points through the pure analysis core.

`sweep_summary(store, sweep_id)` is the object `servelab sweep --json` ends with and
`servelab sweep-summary ID --json` prints (analysis/sweep_result.py builds it); the
dashboard, `recommend`, `gate` and `plan` read sweeps through it.
"""

from __future__ import annotations

from typing import Any

from store import ingest
from store import sweeps as store_sweeps


def sweep_summary(store_path: str, sweep_id: str, status: str | None = None) -> dict[str, Any]:
    """The result object of a stored sweep; `status` overrides the stored one (the runner
    computes the final object just before it writes `completed`)."""
    from analysis.sweep_result import summarize_sweep

    ingest.recover(store_path)  # a store from an older servelab is upgraded here (a CLI command may write)
    store_sweeps.recover_sweeps(store_path)
    row = store_sweeps.get_sweep(store_path, sweep_id)
    if status is not None:
        row["status"] = status
    return summarize_sweep(row, store_sweeps.get_points(store_path, sweep_id))


def list_sweeps(store_path: str) -> list[dict[str, Any]]:
    """Every sweep, newest first (`servelab sweeps`)."""
    ingest.recover(store_path)
    store_sweeps.recover_sweeps(store_path)
    return store_sweeps.list_sweeps(store_path)
