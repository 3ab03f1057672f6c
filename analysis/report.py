"""A run's whole summary from its stored rows: what `servelab summary` prints and the
dashboard's run page shows, computed in one place.

`run_report` adds to `analysis.summary.summarize_run` the profiler's top operators and the
requests its windows slowed. Pure: takes the rows (store/load.py reads them), no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pandas as pd

from analysis.engine_metrics import engine_metrics
from analysis.hardware import profiler_windows
from analysis.summary import SloArg, summarize_run
from analysis.table import RequestTable

TOP_OPERATORS = 10
SETUP_KEYS = ("engine", "engine_version", "model", "dtype", "hardware")  # the run row's setup columns


class StoredRun(Protocol):
    """A run's rows as the store gives them (store.load.RunData)."""

    @property
    def run(self) -> Mapping[str, Any]: ...
    @property
    def steps(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def requests(self) -> pd.DataFrame: ...
    @property
    def samples(self) -> pd.DataFrame: ...
    @property
    def operators(self) -> Sequence[Mapping[str, Any]]: ...


def top_operators(rows: Sequence[Mapping[str, Any]], n: int = TOP_OPERATORS) -> list[Mapping[str, Any]]:
    """The first `n` operators of each profiled step (rows come ordered by step, rank)."""
    return [r for r in rows if (r.get("rank") or 0) <= n]


def run_report(data: StoredRun, slo: SloArg = None, table: RequestTable | None = None) -> dict[str, Any]:
    """The summary object of `servelab summary --json`; `slo` None judges by the run's own SLO;
    `table` the run's RequestTable when the caller built it already."""
    summary = summarize_run(data.run, data.steps, data.requests, slo, data.samples, table=table)
    summary["operators"] = top_operators(data.operators)
    summary["setup"] = {k: data.run.get(k) for k in SETUP_KEYS}
    summary["engine_metrics"] = engine_metrics(getattr(data, "engine_samples", None))
    summary["profiler_windows"] = profiler_windows(data.operators, data.steps, data.requests)
    return summary
