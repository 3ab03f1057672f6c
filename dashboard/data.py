"""The dashboard's data access: short-lived read-only store connections behind caches.

The dashboard never writes: a run in progress owns the store's write lock, and a reader
that finds the file locked shows a notice and retries on the next refresh instead of
blocking the writer.
"""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from servelab.config import DEFAULT_STORE, ENV_PREFIX, SLOTerm
from store import queries
from store.schema import StoreError


def store_path() -> str:
    return os.environ.get(f"{ENV_PREFIX}STORE", DEFAULT_STORE)


@st.cache_data(ttl=5, show_spinner=False)
def runs(path: str) -> list[dict]:
    return queries.list_runs(path)


@st.cache_data(ttl=30, show_spinner=False)
def run_bundle(path: str, run_id: str) -> tuple[dict, list[dict], pd.DataFrame]:
    """(run, steps, requests) of one run."""
    return (queries.get_run(path, run_id), queries.get_steps(path, run_id),
            queries.get_requests(path, run_id))


def slo_of(run: dict) -> list[SLOTerm]:
    return [SLOTerm.model_validate(t) for t in (run.get("config") or {}).get("slo") or []]


def guarded(fn, *args):
    """Calls a store read; a missing or busy store becomes a notice, not a traceback."""
    try:
        return fn(*args)
    except StoreError as exc:
        st.warning(str(exc))
        st.stop()
