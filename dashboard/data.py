"""The dashboard's data access: short-lived read-only store connections behind caches.

The dashboard never writes: a run in progress owns the store's write lock, and a reader
that finds the file locked shows a notice (with a retry button) instead of blocking the
writer or showing a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import streamlit as st

from analysis.table import RequestTable, request_table
from servelab.config import DEFAULT_STORE, ENV_PREFIX
from store import queries
from store.load import RunData, load_run
from store.schema import StoreBusyError, StoreError, connect_read

START_HINT = "Start one with `servelab run --target builtin --rate 2 --duration 10`."


def store_path() -> str:
    return os.environ.get(f"{ENV_PREFIX}STORE", DEFAULT_STORE)


@st.cache_data(ttl=5, show_spinner="Reading the store…")
def runs(path: str) -> list[dict]:
    """Every run, newest first (store.queries.list_runs); cached for a few seconds."""
    return queries.list_runs(path)


class SharedOpen:
    """One read-only open of the store shared by the reads of a page that loads many runs (a
    run set): made at the first read that misses the caches, closed when the page is done
    (`shared_open`). An open and close cost about as much as reading a 5,000-request run."""

    def __init__(self, path: str):
        self.path = path
        self._con: duckdb.DuckDBPyConnection | None = None

    def source(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = connect_read(self.path)
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


@contextmanager
def shared_open(path: str) -> Iterator[SharedOpen]:
    """`with shared_open(path) as shared: run_data(path, id, stamp, shared) ...`"""
    shared = SharedOpen(path)
    try:
        yield shared
    finally:
        shared.close()


@st.cache_resource(ttl=300, max_entries=32, show_spinner="Reading the run…")
def run_data(path: str, run_id: str, stamp: tuple = (), _shared: SharedOpen | None = None) -> RunData:
    """One run's stored rows (store.load.load_run, the read path `servelab summary` uses too).

    `stamp` is part of the cache key only: pass what the run listing says about the run
    (status, request count, end time) so a run that changed is read again at once. Kept as
    one shared object, not a copy per call (a page reads it several times; unpickling a
    5,000-request run costs about as much as reading it): callers must not modify it.
    `_shared` (not part of the key) reads through a page's one open instead of a new one.
    """
    return load_run(_shared.source() if _shared else path, run_id)


def clear_caches() -> None:
    """Forget every cached read: Streamlit's data caches and the loaded runs kept as resources."""
    st.cache_data.clear()
    st.cache_resource.clear()


def run_stamp(row: dict) -> tuple:
    """What changes in a run's listing row while it runs, finishes or is recovered."""
    return row.get("status"), row.get("requests"), row.get("steps"), row.get("ended_at")


def guarded(fn, *args):
    """Calls a store read; a missing, busy or unreadable store becomes a notice, not a traceback."""
    try:
        return fn(*args)
    except StoreBusyError as exc:
        st.warning(f"{exc}. Another process has the store open for writing; the dashboard only "
                   "reads, so it gives way instead of blocking it. Retry in a moment.", icon="⏳")
        st.button("Retry", key="retry-busy")
    except StoreError as exc:
        path = args[0] if args else store_path()
        if not Path(path).exists():
            st.warning(f"No store at `{path}` yet. {START_HINT} Point the dashboard at another "
                       "store with `servelab dashboard --store PATH` or `SERVELAB_STORE`.")
        else:
            st.warning(str(exc))
    except Exception as exc:  # e.g. a DuckDB file that is not a servelab store
        first = str(exc).splitlines()[0] if str(exc) else ""
        st.error(f"Cannot read the store `{args[0] if args else store_path()}`: "
                 f"{type(exc).__name__}: {first}")
    st.stop()


@st.cache_data(ttl=5, show_spinner="Reading the sweeps…")
def sweeps(path: str) -> list[dict]:
    """Every sweep, newest first (store.sweeps.list_sweeps); cached for a few seconds."""
    from store import sweeps as store_sweeps

    return store_sweeps.list_sweeps(path)


@st.cache_data(ttl=300, max_entries=16, show_spinner="Reading the sweep…")
def sweep_result(path: str, sweep_id: str, stamp: tuple = ()) -> dict:
    """One sweep's result object (analysis/sweep_result.py); `stamp` (status, point count)
    is only part of the cache key, so a sweep still running is read again as it grows."""
    from analysis.sweep_result import summarize_sweep
    from store import sweeps as store_sweeps

    return summarize_sweep(store_sweeps.get_sweep(path, sweep_id), store_sweeps.get_points(path, sweep_id))


@st.cache_data(ttl=300, max_entries=64, show_spinner="Evaluating the run's requests…")
def run_table(path: str, run_id: str, stamp: tuple = (), _shared: SharedOpen | None = None) -> RequestTable:
    """Every per-request metric of a run, evaluated once (analysis.table.request_table): the
    summary and the raw latencies below both read it."""
    return request_table(run_data(path, run_id, stamp, _shared).requests)


@st.cache_data(ttl=300, max_entries=64, show_spinner="Summarizing the run…")
def plain_summary(path: str, run_id: str, stamp: tuple = (), _shared: SharedOpen | None = None) -> dict:
    """A run's summary with no SLO terms (analysis.report.run_report over store.load.load_run):
    the same object `servelab gate` judges each repeat by, read without writing."""
    from analysis.report import run_report

    return run_report(run_data(path, run_id, stamp, _shared), [], table=run_table(path, run_id, stamp, _shared))


@st.cache_data(ttl=300, max_entries=64, show_spinner="Reading the run's latencies…")
def latencies(path: str, run_id: str, stamp: tuple = (), _shared: SharedOpen | None = None) -> dict:
    """The raw TTFT, ITL and E2E values (ns) behind a run's percentiles
    (analysis.summary.measured_latencies over the stored rows)."""
    from analysis.summary import measured_latencies

    stored = run_data(path, run_id, stamp, _shared)
    return measured_latencies(stored.run, stored.steps, stored.requests,
                              table=run_table(path, run_id, stamp, _shared))
