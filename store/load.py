"""One run read back whole: the single read path of `servelab summary` and the dashboard.

`load_run` opens the store read-only (never writing: no recovery, no migration; an older
store is one error line, store/schema.py) and returns everything a run's summary and pages
are computed from. The summary itself is pure: `analysis.report.run_report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from store import profiles, queries
from store.schema import Readable, reading


@dataclass(frozen=True)
class RunData:
    """A run as stored: its row, steps, requests, hardware samples, top operators and engine metrics."""

    run: dict[str, Any]
    steps: list[dict[str, Any]]
    requests: pd.DataFrame
    samples: pd.DataFrame
    operators: list[dict[str, Any]]
    engine_samples: pd.DataFrame  # the target's /metrics during the run (servelab/telemetry.py)


def load_run(source: Readable, run_id: str) -> RunData:
    """Every stored row of `run_id` (StoreError: no store, not a servelab store, no such run),
    read through one read-only open (an open costs about as much as the reads of a 5,000-request
    run); `source` is the store's path, or a read-only connection that many loads share."""
    with reading(source) as con:
        return RunData(run=queries.get_run(con, run_id), steps=queries.get_steps(con, run_id),
                       requests=queries.get_requests(con, run_id), samples=profiles.get_samples(con, run_id),
                       operators=profiles.get_operators(con, run_id),
                       engine_samples=profiles.get_engine_samples(con, run_id))
