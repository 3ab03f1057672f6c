"""The DuckDB store: schema and migrations, run lifecycle, spool ingest and recovery, queries.

The only package that imports duckdb. Writers hold connections briefly; readers open
read-only and retry while the file is locked.
"""

from store.ingest import ingest_step, recover
from store.queries import get_requests, get_run, get_steps, list_runs
from store.runs import (
    RunLock, add_step, create_run, finish_run, new_run_id, spool_dir,
)
from store.schema import StoreBusyError, StoreError, connect_read, connect_write

__all__ = [
    "RunLock", "StoreBusyError", "StoreError", "add_step", "connect_read", "connect_write", "create_run",
    "finish_run", "get_requests", "get_run", "get_steps", "ingest_step", "list_runs",
    "new_run_id", "recover", "spool_dir",
]
